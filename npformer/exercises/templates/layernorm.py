"""Exercise 5, layernorm: the backward pass of layer normalisation.
Read: docs/derivations/layernorm.md

Write `backward`, then run `npformer exercise check layernorm.py` (add --train to train the
reverse task with it). The forward is given in its plain form; leave it as it is: the checker
differentiates it numerically.
"""

import numpy as np

EXERCISE = "layernorm"


class LayerNorm:
    """y = gamma * (x - mean) / sqrt(var + eps) + beta over the last axis (biased variance)."""

    def __init__(self, d_model, eps=1e-5):
        self.eps = eps
        self.params = {"gamma": np.ones(d_model), "beta": np.zeros(d_model)}  # (D,) each
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.cache = None

    def forward(self, x):                                        # x: (B,T,D)
        mu = x.mean(axis=-1, keepdims=True)                      # (B,T,1)  (LN-1)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)       # (B,T,1)  (LN-2)
        rstd = 1.0 / np.sqrt(var + self.eps)                     # (B,T,1)
        xhat = (x - mu) * rstd                                   # (B,T,D)  (LN-3)
        self.cache = (xhat, rstd)
        return self.params["gamma"] * xhat + self.params["beta"]  # (B,T,D)  (LN-4)

    def backward(self, dout):
        """The gradients of layer normalisation.

        Inputs: dout (B,T,D); self.cache is (xhat, rstd).
        Adds (+=, never =) into: self.grads["beta"] (D,)   (LN-5)
                                 self.grads["gamma"] (D,)  (LN-6)
        Returns: dx (B,T,D)  (LN-7)
        Leave dout and self.cache unchanged.   Read: docs/derivations/layernorm.md
        """
        raise NotImplementedError("write LayerNorm.backward")
