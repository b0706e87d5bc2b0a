"""Position-wise feed-forward network.  docs: derivations/feedforward.md"""

import numpy as np

from npformer.layers.base import Layer
from npformer.layers.linear import glorot, linear_backward, linear_forward

GELU_C = float(np.sqrt(2.0 / np.pi))


class FeedForward(Layer):
    """FFN(x) = act(x W1 + b1) W2 + b2, the same two linears at every position.

    act is ReLU (the paper) or GELU (tanh approximation). Inputs: x (..., D). Returns: y (..., D).
    Parameters: W1 (D, F), b1 (F,), W2 (F, D), b2 (D,).
    """

    def __init__(self, d_model, d_ff, rng, activation="relu", xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}.")
        self.activation = activation
        self.add_param("W1", glorot(rng, d_model, d_ff))         # (D,F)
        self.add_param("b1", np.zeros(d_ff))                     # (F,)
        self.add_param("W2", glorot(rng, d_ff, d_model))         # (F,D)
        self.add_param("b2", np.zeros(d_model))                  # (D,)

    def forward(self, x):                                        # x: (...,D)
        p = self.params
        h = linear_forward(x, p["W1"], p["b1"])                  # (...,F)  (FFN-1)
        if self.activation == "relu":
            # in place: backward needs only where h > 0, which is where a > 0, so h can go
            a = self.xp.maximum(h, 0, out=h)                     # (...,F)  (FFN-2)
        else:
            t = self.xp.tanh(GELU_C * (h + 0.044715 * h ** 3))   # (...,F)
            a = 0.5 * h * (1.0 + t)                              # (...,F)  (FFN-2)
        self.cache = (x, h, a)
        return linear_forward(a, p["W2"], p["b2"])               # (...,D)  (FFN-3)

    def backward(self, dout):                                    # dout: (...,D)
        x, h, a = self.cache
        p, g = self.params, self.grads
        da = linear_backward(dout, a, p["W2"], g["W2"], g["b2"])  # (...,F)  fwd: y = a W2 + b2  (FFN-4)
        if self.activation == "relu":
            dh = self.xp.multiply(da, a > 0, out=da)             # (...,F)  relu passes gradient where h > 0  (FFN-5)
        else:
            t = self.xp.tanh(GELU_C * (h + 0.044715 * h ** 3))   # (...,F)
            dgelu = 0.5 * (1.0 + t) + 0.5 * h * (1.0 - t * t) * GELU_C * (1.0 + 3 * 0.044715 * h * h)  # (FFN-5)
            dh = da * dgelu                                      # (...,F)  (FFN-5)
        return linear_backward(dh, x, p["W1"], g["W1"], g["b1"])  # (...,D)  fwd: h = x W1 + b1  (FFN-6)
