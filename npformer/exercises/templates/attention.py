"""Exercise 4, attention: the backward pass of scaled dot-product attention.
Read: docs/derivations/attention.md (and softmax.md for the softmax in the middle)

Write `backward`, then run `npformer exercise check attention.py`. The forward is given in its
plain form; leave it as it is: the checker differentiates it numerically.
"""

import numpy as np

from npformer.exercises.templates.softmax import softmax   # the softmax exercise's forward

EXERCISE = "attention"


class ScaledDotProductAttention:
    """out = softmax(q k^T / sqrt(d_k), masked) v."""

    def __init__(self):
        self.params, self.grads = {}, {}
        self.cache = None

    def forward(self, q, k, v, keep=None):                       # q: (B,H,T,K), k, v: (B,H,S,K)
        d_k = q.shape[-1]
        scores = q @ k.swapaxes(-1, -2) / d_k ** 0.5                 # (B,H,T,S)  (ATT-1)
        A = softmax(scores, keep)                                # (B,H,T,S)  (ATT-2)
        out = A @ v                                              # (B,H,T,K)  (ATT-3)
        self.cache = (q, k, v, A)
        return out

    def backward(self, dout):
        """The gradients of out = softmax(q k^T / sqrt(d_k)) v.

        Inputs: dout (B,H,T,K); self.cache is (q, k, v, A).
        Returns: (dq (B,H,T,K), dk (B,H,S,K), dv (B,H,S,K)), through (ATT-4) dA, (ATT-5) dv,
        (ATT-6) dscores (the softmax backward, then the 1/sqrt(d_k)), (ATT-7) dq, (ATT-8) dk.
        Leave dout and self.cache unchanged.   Read: docs/derivations/attention.md
        """
        raise NotImplementedError("write ScaledDotProductAttention.backward")
