"""Scaled dot-product attention and multi-head attention.  docs: derivations/attention.md,
derivations/multihead.md

Masks are boolean "keep" arrays (True = may attend), broadcastable to the scores (B,H,T,S):
a padding mask is (B,1,1,S), the causal mask (1,1,T,T), their combination (B,1,T,T).
"""

import numpy as np

from npformer.backend import get_xp, to_device
from npformer.layers.base import Layer
from npformer.layers.linear import glorot, linear_backward, linear_forward
from npformer.layers.scores import make_score_attention
from npformer.layers.softmax import softmax, softmax_backward


class ScaledDotProductAttention(Layer):
    """out = softmax(Q K^T / sqrt(d_k), masked) V.

    Inputs: q (B,H,T,K), k (B,H,S,K), v (B,H,S,K), keep (broadcastable to (B,H,T,S)).
    Returns: out (B,H,T,K) and the attention weights A (B,H,T,S).
    out= (forward) and out=(dq, dk, dv) (backward) name arrays to write the results into, as
    NumPy's own out= does; multi-head attention passes views of its merged (B,T,D) arrays.
    """

    def forward(self, q, k, v, keep=None, out=None):
        scale = q.shape[-1] ** -0.5                              # a Python float: no float64 upcast
        scores = q @ k.swapaxes(-1, -2)                          # (B,H,T,S)
        scores *= scale                                          # (B,H,T,S)  in place: a fresh array  (ATT-1)
        A = softmax(scores, keep, out=scores)                    # (B,H,T,S)  in place  (ATT-2)
        self.cache = (q, k, v, A, scale)
        return get_xp(A).matmul(A, v, out=out), A                # (B,H,T,K)  (ATT-3)

    def backward(self, dout, out=(None, None, None)):            # dout: (B,H,T,K)
        q, k, v, A, scale = self.cache
        xp = get_xp(A)
        dA = dout @ v.swapaxes(-1, -2)                           # (B,H,T,S)  fwd: out = A V  (ATT-4)
        dv = xp.matmul(A.swapaxes(-1, -2), dout, out=out[2])     # (B,H,S,K)  (ATT-5)
        dscores = softmax_backward(dA, A, out=dA)                # (B,H,T,S)  in place; softmax, then the 1/sqrt(d_k)
        dscores *= scale                                         # (B,H,T,S)  (ATT-6)
        dq = xp.matmul(dscores, k, out=out[0])                   # (B,H,T,K)  fwd: scores = q k^T  (ATT-7)
        dk = xp.matmul(dscores.swapaxes(-1, -2), q, out=out[1])  # (B,H,S,K)  (ATT-8)
        return dq, dk, dv


class MultiHeadAttention(Layer):
    """MultiHead(Q, K, V) = Concat(head_1..head_H) Wo + bo,  head_h = Attention(Q Wq_h, K Wk_h, V Wv_h).

    Self-attention: forward(x, keep) uses x for queries, keys and values, and backward returns
    one dx (the three paths summed). Cross-attention: forward(x, keep, memory=m) takes keys and
    values from m (B,S,D), and backward returns (dx, dmemory).

    Parameters: Wq, Wk, Wv, Wo (D, D); bq, bk, bv, bo (D,). The H heads are the H column
    blocks of width K = D/H in each W, so one (D, D) product computes every head at once.

    The same idea one level up: Wq, Wk and Wv are the three column blocks of one (D, 3D)
    array `Wqkv` (and bq, bk, bv of one (3D,) `bqkv`; their gradients likewise). Each named
    parameter is a view of its block, so optimisers, checkpoints and gradient checks still
    see three (D, D) parameters, while self-attention computes Q, K and V with one (D, 3D)
    product and reverses them with one (one wide product keeps BLAS busier than three
    narrow ones), and cross-attention computes K and V from the memory with one (D, 2D).
    """

    def __init__(self, d_model, n_heads, rng, xp=None, dtype="float32", score="scaled_dot"):
        super().__init__(xp, dtype)
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}).")
        self.n_heads = n_heads
        D = self.d_model = d_model
        W = {name: glorot(rng, D, D) for name in ("q", "k", "v", "o")}  # (D,D) each, drawn in this order
        host = {"Wqkv": np.concatenate([W["q"], W["k"], W["v"]], axis=1),  # (D,3D)
                "bqkv": np.zeros(3 * D), "Wo": W["o"], "bo": np.zeros(D)}  # (3D,), (D,D), (D,)
        blocks = {name: to_device(a.astype(self.dtype), self.xp) for name, a in host.items()}
        self.bind(blocks, {name: self.xp.zeros_like(a) for name, a in blocks.items()})
        # score: how q and k become a weight (layers/scores.py); its parameters, if any, are
        # drawn after the projections, so the default leaves every seed's model unchanged.
        self.attention = make_score_attention(score, d_model // n_heads, rng, xp, dtype)
        self.weights = None                                      # last A, kept for plots

    def blocks(self):
        return {"Wqkv": self.Wqkv, "bqkv": self.bqkv, "Wo": self.params["Wo"], "bo": self.params["bo"]}

    def views(self, blocks):
        """Wq, Wk, Wv: the column blocks of Wqkv; bq, bk, bv: the thirds of bqkv; Wo and bo as they are."""
        D, out = self.d_model, {}
        for i, name in enumerate(("q", "k", "v")):
            block = slice(i * D, (i + 1) * D)                    # this projection's columns
            out["W" + name], out["b" + name] = blocks["Wqkv"][:, block], blocks["bqkv"][block]  # (D,D), (D,) views
        out["Wo"], out["bo"] = blocks["Wo"], blocks["bo"]
        return out

    def bind(self, params, grads):
        super().bind(params, grads)
        self.Wqkv, self.bqkv = params["Wqkv"], params["bqkv"]    # the packed arrays the views come from
        self.dWqkv, self.dbqkv = grads["Wqkv"], grads["bqkv"]

    def split_heads(self, x):                                    # x: (B,L,D), or (B,L,n*D)
        """(B,L,D) -> (B,H,L,K), L the length (T for queries, S for keys and values). A (B,L,n*D)
        input, n projections side by side (Q|K|V), gives (n,B,H,L,K), to unpack as q, k, v.
        Views only: no copy."""
        B, L, E = x.shape
        n, H = E // self.d_model, self.n_heads
        heads = x.reshape(B, L, n, H, self.d_model // H).transpose(2, 0, 3, 1, 4)  # (n,B,H,L,K)
        return heads[0] if n == 1 else heads

    def forward(self, x, keep=None, memory=None, kv_cache=None):
        """x (B,T,D) -> (B,T,D). kv_cache (a dict, inference only) keeps keys and values across
        decoding steps: self-attention appends this step's, cross-attention computes them once."""
        p, D = self.params, self.d_model
        kv = x if memory is None else memory                     # (B,S,D)  S = T for self-attention
        if memory is None:                                       # Q, K and V all from x: one product
            q, k, v = self.split_heads(linear_forward(x, self.Wqkv, self.bqkv))  # (B,H,T,K) each  (MHA-1)
        else:
            q = self.split_heads(linear_forward(x, p["Wq"], p["bq"]))  # (B,H,T,K)  (MHA-1)
        if kv_cache is not None and memory is not None and "k" in kv_cache:
            k, v = kv_cache["k"], kv_cache["v"]                  # (B,H,S,K)  memory is fixed while decoding
        else:
            if memory is not None:                               # K and V both from memory: one product
                k, v = self.split_heads(linear_forward(memory, self.Wqkv[:, D:], self.bqkv[D:]))  # (B,H,S,K) each  (MHA-1)
            if kv_cache is not None:
                if memory is None and "k" in kv_cache:           # self-attention: extend the prefix
                    xp = self.xp
                    k = xp.concatenate([kv_cache["k"], k], axis=2)  # (B,H,t,K)
                    v = xp.concatenate([kv_cache["v"], v], axis=2)  # (B,H,t,K)
                kv_cache["k"], kv_cache["v"] = k, v
        # Concat(head_1..head_H) (MHA-2) without a copy: each head's output is written straight
        # into its column block of concat, through the (B,H,T,K) view split_heads gives of it.
        concat = self.xp.empty(x.shape[:2] + (D,), dtype=q.dtype)  # (B,T,D)
        _, self.weights = self.attention.forward(q, k, v, keep, out=self.split_heads(concat))  # (B,H,T,S)  (MHA-2)
        self.cache = (x, kv, concat, memory is None)
        return linear_forward(concat, p["Wo"], p["bo"])          # (B,T,D)  (MHA-3)

    def backward(self, dout):                                    # dout: (B,T,D)
        x, kv, concat, is_self = self.cache
        p, g = self.params, self.grads
        dconcat = linear_backward(dout, concat, p["Wo"], g["Wo"], g["bo"])  # (B,T,D)  fwd: concat Wo + bo  (MHA-4)
        dheads = self.split_heads(dconcat)                       # (B,H,T,K)  concat reversed  (MHA-5)
        # dq, dk and dv are written straight into the column blocks of the merged arrays the
        # projections' backward takes, as the forward wrote the heads into concat
        xp, D, dtype = self.xp, self.d_model, dconcat.dtype
        B, T, S = x.shape[0], x.shape[1], kv.shape[1]
        if is_self:
            dqkv = xp.empty((B, T, 3 * D), dtype=dtype)          # (B,T,3D)  [dQ|dK|dV]  (MHA-8)
            self.attention.backward(dheads, out=tuple(self.split_heads(dqkv)))  # (B,H,T,K) x3 into dqkv
            # fwd: [Q|K|V] = x Wqkv + bqkv. Its backward adds dWq, dWk, dWv (MHA-6, MHA-7) into
            # their blocks of dWqkv, and dx = [dQ|dK|dV] Wqkv^T = dQ Wq^T + dK Wk^T + dV Wv^T is
            # the sum over the three uses of x, computed by the one product.
            return linear_backward(dqkv, x, self.Wqkv, self.dWqkv, self.dbqkv)  # (B,T,D)  x fanned out to Q, K and V  (MHA-8)
        dq = xp.empty((B, T, D), dtype=dtype)                    # (B,T,D)  dQ  (MHA-6)
        dkv = xp.empty((B, S, 2 * D), dtype=dtype)               # (B,S,2D)  [dK|dV]  (MHA-7)
        self.attention.backward(dheads, out=(self.split_heads(dq), *self.split_heads(dkv)))
        dx = linear_backward(dq, x, p["Wq"], g["Wq"], g["bq"])   # (B,T,D)  (MHA-6)
        dmemory = linear_backward(dkv, kv, self.Wqkv[:, D:], self.dWqkv[:, D:],
                                  self.dbqkv[D:])                # (B,S,D)  memory fanned out to K and V  (MHA-7)
        return dx, dmemory
