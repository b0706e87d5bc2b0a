"""Positional encodings: the paper's fixed sinusoids, or a learned table.  docs: derivations/positional.md

Both are added to the (scaled) token embeddings, so both pass dout straight through to them.
"""

import numpy as np

from npformer.layers.base import Layer
from npformer.backend import to_device


def sinusoid_table(max_len, d_model):
    """P[pos, 2i] = sin(pos / 10000^(2i/D)),  P[pos, 2i+1] = cos(pos / 10000^(2i/D)).  (PE-1)"""
    pos = np.arange(max_len)[:, None]                            # (L,1)
    i2 = np.arange(0, d_model, 2)[None, :]                       # (1,ceil(D/2))  the even indices 2i
    angle = pos / np.power(10000.0, i2 / d_model)                # (L,ceil(D/2))
    P = np.zeros((max_len, d_model))                             # (L,D)
    P[:, 0::2] = np.sin(angle)
    P[:, 1::2] = np.cos(angle[:, : d_model // 2])               # an odd D has one sine more than cosines
    return P


class SinusoidalPositionalEncoding(Layer):
    """y = x + P[start : start + T], P fixed (a buffer, not a parameter).

    Inputs: x (B, T, D).  Returns: y (B, T, D).  `start` offsets positions for step-by-step decoding.
    """

    def __init__(self, max_len, d_model, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        self.max_len = max_len
        self.P = to_device(sinusoid_table(max_len, d_model).astype(self.dtype), self.xp)  # (L,D)

    def forward(self, x, start=0):                               # x: (B,T,D)
        T = x.shape[1]
        return x + self.P[start:start + T]                       # (B,T,D)  (PE-2)

    def backward(self, dout):                                    # dout: (B,T,D)
        return dout                                              # (B,T,D)  fwd: y = x + P  (PE-3)


class LearnedPositionalEncoding(Layer):
    """y = x + P[start : start + T], P a parameter (max_len, D) trained like any other.

    Inputs: x (B, T, D).  Returns: y (B, T, D).
    """

    def __init__(self, max_len, d_model, rng, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        self.max_len = max_len
        self.add_param("P", rng.normal(0.0, 0.02, size=(max_len, d_model)))  # (L,D)

    def forward(self, x, start=0):                               # x: (B,T,D)
        T = x.shape[1]
        self.cache = (start, T)
        return x + self.params["P"][start:start + T]             # (B,T,D)  (PE-2)

    def backward(self, dout):                                    # dout: (B,T,D)
        start, T = self.cache
        self.grads["P"][start:start + T] += dout.sum(axis=0)     # (T,D)  P broadcast over B  (PE-4)
        return dout                                              # (B,T,D)  (PE-3)
