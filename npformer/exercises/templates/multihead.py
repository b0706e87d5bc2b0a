"""Exercise 9, multihead: the backward pass of multi-head attention, self-attention first
(Q = K = V = x), then cross-attention (keys and values from the encoder's memory).
Read: docs/derivations/multihead.md (and attention.md for the attention inside)

Write `backward`, then run `npformer exercise check multihead.py` (add --train to train the
reverse task with it). The forward is given in its plain form; leave it as it is.
"""

import numpy as np

from npformer.exercises.templates.softmax import softmax   # the softmax exercise's forward

EXERCISE = "multihead"


class MultiHeadAttention:
    """Concat(head_1..head_H) Wo + bo, head_h = Attention(Q Wq_h, K Wk_h, V Wv_h); the H heads
    are the H column blocks of width K = D/H of each (D,D) projection."""

    def __init__(self, d_model, n_heads, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng
        self.d_model, self.n_heads = d_model, n_heads
        self.params = {}
        for name in ("q", "k", "v", "o"):
            self.params["W" + name] = rng.standard_normal((d_model, d_model)) / np.sqrt(d_model)  # (D,D)
            self.params["b" + name] = np.zeros(d_model)          # (D,)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.cache = None

    def split_heads(self, x):                                    # (B,N,D) -> (B,H,N,K)
        B, N, D = x.shape
        return x.reshape(B, N, self.n_heads, D // self.n_heads).transpose(0, 2, 1, 3)

    def merge_heads(self, x):                                    # (B,H,N,K) -> (B,N,D)
        B, H, N, K = x.shape
        return x.transpose(0, 2, 1, 3).reshape(B, N, H * K)

    def forward(self, x, keep=None, memory=None):                # x: (B,T,D), memory: (B,S,D) or None
        p = self.params
        kv = x if memory is None else memory                     # (B,S,D)  S = T for self-attention
        q = self.split_heads(x @ p["Wq"] + p["bq"])              # (B,H,T,K)  (MHA-1)
        k = self.split_heads(kv @ p["Wk"] + p["bk"])             # (B,H,S,K)  (MHA-1)
        v = self.split_heads(kv @ p["Wv"] + p["bv"])             # (B,H,S,K)  (MHA-1)
        scores = q @ k.swapaxes(-1, -2) / q.shape[-1] ** 0.5        # (B,H,T,S)  (ATT-1)
        A = softmax(scores, keep)                                # (B,H,T,S)  (ATT-2)
        concat = self.merge_heads(A @ v)                         # (B,T,D)  (ATT-3), (MHA-2)
        self.cache = (x, kv, q, k, v, A, concat, memory is None)
        return concat @ p["Wo"] + p["bo"]                        # (B,T,D)  (MHA-3)

    def backward(self, dout):
        """The gradients of multi-head attention.

        Inputs: dout (B,T,D); self.cache is (x, kv, q, k, v, A, concat, is_self).
        Adds (+=, never =) into self.grads: Wo (D,D), bo (D,)  (MHA-4); Wq, bq  (MHA-6);
        Wk, bk, Wv, bv  (MHA-7); each W is (D,D), each b (D,).
        Returns: self-attention (is_self): dx (B,T,D), the sum of its three paths (MHA-8);
                 cross-attention: (dx (B,T,D), dmemory (B,S,D))  (MHA-6, MHA-7).
        In between: (MHA-4) dconcat, (MHA-5) split it into heads, the attention exercise's
        (ATT-4)..(ATT-8) for dq, dk, dv, then merge the heads back.
        Leave dout and self.cache unchanged.   Read: docs/derivations/multihead.md
        """
        raise NotImplementedError("write MultiHeadAttention.backward")
