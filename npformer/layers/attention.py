"""Scaled dot-product attention and multi-head attention.  docs: derivations/attention.md,
derivations/multihead.md

Masks are boolean "keep" arrays (True = may attend), broadcastable to the scores (B,H,T,S):
a padding mask is (B,1,1,S), the causal mask (1,1,T,T), their combination (B,1,T,T).
"""

import numpy as np

from npformer.layers.base import Layer
from npformer.layers.linear import glorot, linear_backward
from npformer.layers.softmax import softmax, softmax_backward


class ScaledDotProductAttention(Layer):
    """out = softmax(Q K^T / sqrt(d_k), masked) V.

    Inputs: q (B,H,T,K), k (B,H,S,K), v (B,H,S,K), keep (broadcastable to (B,H,T,S)).
    Returns: out (B,H,T,K) and the attention weights A (B,H,T,S).
    """

    def forward(self, q, k, v, keep=None):
        scale = q.shape[-1] ** -0.5                              # a Python float: no float64 upcast
        scores = (q @ k.swapaxes(-1, -2)) * scale                # (B,H,T,S)  (ATT-1)
        A = softmax(scores, keep)                                # (B,H,T,S)  (ATT-2)
        self.cache = (q, k, v, A, scale)
        return A @ v, A                                          # (B,H,T,K)  (ATT-3)

    def backward(self, dout):                                    # dout: (B,H,T,K)
        q, k, v, A, scale = self.cache
        dA = dout @ v.swapaxes(-1, -2)                           # (B,H,T,S)  fwd: out = A V  (ATT-4)
        dv = A.swapaxes(-1, -2) @ dout                           # (B,H,S,K)  (ATT-5)
        dscores = softmax_backward(dA, A) * scale                # (B,H,T,S)  softmax, then the 1/sqrt(d_k)  (ATT-6)
        dq = dscores @ k                                         # (B,H,T,K)  fwd: scores = q k^T  (ATT-7)
        dk = dscores.swapaxes(-1, -2) @ q                        # (B,H,S,K)  (ATT-8)
        return dq, dk, dv


class MultiHeadAttention(Layer):
    """MultiHead(Q, K, V) = Concat(head_1..head_H) Wo + bo,  head_h = Attention(Q Wq_h, K Wk_h, V Wv_h).

    Self-attention: forward(x, keep) uses x for queries, keys and values, and backward returns
    one dx (the three paths summed). Cross-attention: forward(x, keep, memory=m) takes keys and
    values from m (B,S,D), and backward returns (dx, dmemory).

    Parameters: Wq, Wk, Wv, Wo (D, D); bq, bk, bv, bo (D,). The H heads are the H column
    blocks of width K = D/H in each W, so one (D, D) product computes every head at once.
    """

    def __init__(self, d_model, n_heads, rng, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}).")
        self.n_heads = n_heads
        for name in ("q", "k", "v", "o"):
            self.add_param("W" + name, glorot(rng, d_model, d_model))  # (D,D)
            self.add_param("b" + name, np.zeros(d_model))            # (D,)
        self.attention = ScaledDotProductAttention(xp, dtype)
        self.weights = None                                      # last A, kept for plots

    def split_heads(self, x):                                    # x: (B,N,D)
        B, N, D = x.shape
        return x.reshape(B, N, self.n_heads, D // self.n_heads).transpose(0, 2, 1, 3)  # (B,H,N,K)

    @staticmethod
    def merge_heads(x):                                          # x: (B,H,N,K)
        B, H, N, K = x.shape
        return x.transpose(0, 2, 1, 3).reshape(B, N, H * K)      # (B,N,D)

    def forward(self, x, keep=None, memory=None, kv_cache=None):
        """x (B,T,D) -> (B,T,D). kv_cache (a dict, inference only) keeps keys and values across
        decoding steps: self-attention appends this step's, cross-attention computes them once."""
        p = self.params
        kv = x if memory is None else memory                     # (B,S,D)  S = T for self-attention
        q = self.split_heads(x @ p["Wq"] + p["bq"])              # (B,H,T,K)  (MHA-1)
        if kv_cache is not None and memory is not None and "k" in kv_cache:
            k, v = kv_cache["k"], kv_cache["v"]                  # (B,H,S,K)  memory is fixed while decoding
        else:
            k = self.split_heads(kv @ p["Wk"] + p["bk"])         # (B,H,S,K)  (MHA-1)
            v = self.split_heads(kv @ p["Wv"] + p["bv"])         # (B,H,S,K)  (MHA-1)
            if kv_cache is not None:
                if memory is None and "k" in kv_cache:           # self-attention: extend the prefix
                    xp = self.xp
                    k = xp.concatenate([kv_cache["k"], k], axis=2)  # (B,H,t,K)
                    v = xp.concatenate([kv_cache["v"], v], axis=2)  # (B,H,t,K)
                kv_cache["k"], kv_cache["v"] = k, v
        heads, self.weights = self.attention.forward(q, k, v, keep)  # (B,H,T,K), (B,H,T,S)
        concat = self.merge_heads(heads)                         # (B,T,D)  (MHA-2)
        self.cache = (x, kv, concat, memory is None)
        return concat @ p["Wo"] + p["bo"]                        # (B,T,D)  (MHA-3)

    def backward(self, dout):                                    # dout: (B,T,D)
        x, kv, concat, is_self = self.cache
        p, g = self.params, self.grads
        dconcat = linear_backward(dout, concat, p["Wo"], g["Wo"], g["bo"])  # (B,T,D)  fwd: concat Wo + bo  (MHA-4)
        dheads = self.split_heads(dconcat)                       # (B,H,T,K)  merge reversed  (MHA-5)
        dq, dk, dv = self.attention.backward(dheads)             # (B,H,T,K), (B,H,S,K), (B,H,S,K)
        dx = linear_backward(self.merge_heads(dq), x, p["Wq"], g["Wq"], g["bq"])     # (B,T,D)  (MHA-6)
        dkv = (linear_backward(self.merge_heads(dk), kv, p["Wk"], g["Wk"], g["bk"])  # (B,S,D)  (MHA-7)
               + linear_backward(self.merge_heads(dv), kv, p["Wv"], g["Wv"], g["bv"]))
        if is_self:
            return dx + dkv                                      # (B,T,D)  x fanned out to Q, K and V  (MHA-8)
        return dx, dkv
