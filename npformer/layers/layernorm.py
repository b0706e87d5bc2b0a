"""Layer normalisation over the last axis.  docs: derivations/layernorm.md"""

import numpy as np

from npformer.layers.base import Layer


class LayerNorm(Layer):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, over the last axis.

    The variance is the biased one (divide by D), as in the layer-normalisation paper; eps sits
    inside the square root, as in PyTorch. Inputs: x (..., D).  Returns: y (..., D).
    Parameters: gamma (D,) = 1, beta (D,) = 0.
    """

    def __init__(self, d_model, eps=1e-5, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        self.eps = eps
        self.add_param("gamma", np.ones(d_model))                # (D,)
        self.add_param("beta", np.zeros(d_model))                # (D,)

    def forward(self, x):                                        # x: (...,D)
        xp = self.xp
        mu = x.mean(axis=-1, keepdims=True)                      # (...,1)  (LN-1)
        xc = x - mu                                              # (...,D)
        var = (xc * xc).mean(axis=-1, keepdims=True)             # (...,1)  biased variance  (LN-2)
        rstd = 1.0 / xp.sqrt(var + self.eps)                     # (...,1)
        xhat = xc * rstd                                         # (...,D)  (LN-3)
        self.cache = (xhat, rstd)
        return self.params["gamma"] * xhat + self.params["beta"]  # (...,D)  (LN-4)

    def backward(self, dout):                                    # dout: (...,D)
        xhat, rstd = self.cache
        D = xhat.shape[-1]
        sum_axes = tuple(range(dout.ndim - 1))                   # gamma and beta broadcast over every leading axis
        self.grads["beta"] += dout.sum(axis=sum_axes)            # (D,)  (LN-5)
        self.grads["gamma"] += (dout * xhat).sum(axis=sum_axes)  # (D,)  (LN-6)
        dxhat = dout * self.params["gamma"]                      # (...,D)  fwd: y = gamma * xhat + beta  (LN-7)
        # xhat depends on x directly and through mu and var; the two means collect those paths.
        return rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                       - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))  # (...,D)  (LN-7)
