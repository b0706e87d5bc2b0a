"""Linear: y = x W + b, with W of shape (in, out).  docs: derivations/linear.md"""

import numpy as np

from npformer.layers.base import Layer


def glorot(rng, d_in, d_out):
    """Glorot/Xavier uniform: keeps the variance of activations and gradients near 1."""
    limit = np.sqrt(6.0 / (d_in + d_out))
    return rng.uniform(-limit, limit, size=(d_in, d_out))      # (in,out)


class Linear(Layer):
    """y = x W + b over the last axis.

    Inputs: x (..., in).  Returns: y (..., out).
    Parameters: W (in, out), b (out,).
    """

    def __init__(self, d_in, d_out, rng, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        self.add_param("W", glorot(rng, d_in, d_out))           # (in,out)
        self.add_param("b", np.zeros(d_out))                     # (out,)

    def forward(self, x):                                        # x: (...,in)
        self.cache = x
        return x @ self.params["W"] + self.params["b"]           # (...,out)  (LIN-1)

    def backward(self, dout):                                    # dout: (...,out)
        return linear_backward(dout, self.cache, self.params["W"], self.grads["W"], self.grads["b"])


def linear_backward(dout, x, W, dW, db):
    """The backward of y = x W + b, shared by every projection in the model.

    Adds the parameter gradients into dW and db (in place) and returns dx.
    Inputs: dout (..., out), x (..., in) from the forward, W (in, out).
    """
    d_in, d_out = W.shape
    x2 = x.reshape(-1, d_in)                                     # (N,in)  every leading axis is a row
    dout2 = dout.reshape(-1, d_out)                              # (N,out)
    dW += x2.T @ dout2                                           # (in,out)  (LIN-2)
    db += dout2.sum(axis=0)                                      # (out,)  b broadcast over rows  (LIN-3)
    return dout @ W.T                                            # (...,in)  (LIN-4)
