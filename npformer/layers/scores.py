"""Attention scoring functions: how a query and a key become one number.  docs: derivations/scores.md

Every attention here is  out = softmax(score(Q, K), masked) V;  only the score differs:

    scaled_dot   q . k / sqrt(d_k)                 Vaswani et al. 2017 (the default; attention.py)
    dot          q . k                             Luong et al. 2015, "dot"
    general      q W k^T                           Luong et al. 2015, "general"
    additive     w . tanh(q W_q + k W_k)           Bahdanau et al. 2015, a one-hidden-layer MLP
    cosine       g * (q . k) / (|q| |k|)           cosine similarity, scale g learned or fixed

Each class keeps ScaledDotProductAttention's interface: forward(q, k, v, keep) -> (out, A)
with q (B,H,T,K), k and v (B,H,S,K), keep a boolean mask broadcastable to (B,H,T,S); and
backward(dout) -> (dq, dk, dv). The softmax, the weighted sum and their backward are shared
(ScoreAttention); a subclass writes only its score and the score's backward.

Hard attention: with `hard = True` the softmax is replaced by a one-hot vector on the best
kept key. That is an argmax, piecewise constant in the scores, so its derivative is zero
almost everywhere and undefined at ties: there is nothing for backpropagation to follow,
and backward refuses. It is a decoding-time switch (`hard_attention`), not a way to train.
"""

import contextlib

import numpy as np

from npformer.backend import get_xp
from npformer.layers.base import Layer
from npformer.layers.linear import glorot
from npformer.layers.softmax import MASK_FILL, softmax, softmax_backward

COSINE_EPS = 1e-6          # inside the square root of |q|^2, so a zero query has a finite norm
COSINE_SCALE = 10.0        # the initial (or fixed) g: |cos| <= 1, so softmax needs g to be peaked


def hard_weights(scores, keep):
    """One-hot on the highest kept score of each row; a row with nothing kept stays all zero."""
    xp = get_xp(scores)
    if keep is not None:
        scores = xp.where(keep, scores, MASK_FILL)               # (B,H,T,S)
    best = scores.argmax(axis=-1)                                # (B,H,T)
    A = (xp.arange(scores.shape[-1]) == best[..., None]).astype(scores.dtype)  # (B,H,T,S)
    return A * keep if keep is not None else A                   # (B,H,T,S)


class ScoreAttention(Layer):
    """out = softmax(score(q, k), keep) v, with the score left to the subclass.

    Inputs: q (B,H,T,K), k (B,H,S,K), v (B,H,S,K), keep (broadcastable to (B,H,T,S)).
    Returns: out (B,H,T,K) and the attention weights A (B,H,T,S). out= and out=(dq, dk, dv)
    name arrays to write the results into, as in ScaledDotProductAttention.
    """

    hard = False

    def score(self, q, k):
        """(B,H,T,K), (B,H,S,K) -> scores (B,H,T,S), and what score_backward needs."""
        raise NotImplementedError

    def score_backward(self, dscores, cache):
        """dscores (B,H,T,S) -> (dq, dk); parameter gradients are added into self.grads."""
        raise NotImplementedError

    def forward(self, q, k, v, keep=None, out=None):
        scores, score_cache = self.score(q, k)                   # (B,H,T,S)
        if self.hard:
            A = hard_weights(scores, keep)                       # (B,H,T,S)  one-hot: no gradient
        else:
            A = softmax(scores, keep)                            # (B,H,T,S)  (SCORE-1)
        self.cache = (score_cache, v, A, self.hard)
        return get_xp(A).matmul(A, v, out=out), A                # (B,H,T,K)  (SCORE-2)

    def backward(self, dout, out=(None, None, None)):            # dout: (B,H,T,K)
        score_cache, v, A, hard = self.cache
        if hard:
            raise RuntimeError("hard (argmax) attention has no gradient: its weights are piecewise "
                               "constant in the scores. Switch it off before training.")
        dA = dout @ v.swapaxes(-1, -2)                           # (B,H,T,S)  fwd: out = A v  (SCORE-3)
        dv = get_xp(A).matmul(A.swapaxes(-1, -2), dout, out=out[2])  # (B,H,S,K)  (SCORE-4)
        dscores = softmax_backward(dA, A, out=dA)                # (B,H,T,S)  in place; masked entries get 0  (SCORE-5)
        dq, dk = self.score_backward(dscores, score_cache)
        if out[0] is not None:                                   # copied where the caller asked
            out[0][...], out[1][...] = dq, dk
            dq, dk = out[0], out[1]
        return dq, dk, dv


class ScaledDotAttention(ScoreAttention):
    """score = q k^T / sqrt(d_k): the paper's score in this file's form (used for hard attention;
    the model's default is the equivalent ScaledDotProductAttention of attention.py)."""

    def score(self, q, k):
        scale = q.shape[-1] ** -0.5
        return (q @ k.swapaxes(-1, -2)) * scale, (q, k, scale)   # (B,H,T,S)

    def score_backward(self, dscores, cache):
        q, k, scale = cache
        ds = dscores * scale                                     # (B,H,T,S)  fwd: scores = scale * q k^T  (SCORE-6)
        return ds @ k, ds.swapaxes(-1, -2) @ q                   # (B,H,T,K), (B,H,S,K)  (SCORE-6)


class DotAttention(ScoreAttention):
    """score = q k^T, no scaling. With unit-variance q and k its spread grows like sqrt(d_k),
    which pushes softmax into saturation as d_k grows (the reason for the paper's 1/sqrt(d_k))."""

    def score(self, q, k):
        return q @ k.swapaxes(-1, -2), (q, k)                    # (B,H,T,S)  (SCORE-7)

    def score_backward(self, dscores, cache):
        q, k = cache
        dq = dscores @ k                                         # (B,H,T,K)  (SCORE-8)
        dk = dscores.swapaxes(-1, -2) @ q                        # (B,H,S,K)  (SCORE-8)
        return dq, dk


class GeneralAttention(ScoreAttention):
    """score = q W k^T (Luong's "general"): a learned bilinear form. Parameter: W (K, K)."""

    def __init__(self, d_k, rng, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        self.add_param("W", glorot(rng, d_k, d_k))                # (K,K)

    def score(self, q, k):
        qW = q @ self.params["W"]                                # (B,H,T,K)  (SCORE-9)
        return qW @ k.swapaxes(-1, -2), (q, k, qW)               # (B,H,T,S)  (SCORE-10)

    def score_backward(self, dscores, cache):
        q, k, qW = cache
        K = q.shape[-1]
        dqW = dscores @ k                                        # (B,H,T,K)  fwd: scores = qW k^T  (SCORE-11)
        dk = dscores.swapaxes(-1, -2) @ qW                       # (B,H,S,K)  (SCORE-12)
        self.grads["W"] += q.reshape(-1, K).T @ dqW.reshape(-1, K)  # (K,K)  summed over B,H,T  (SCORE-13)
        dq = dqW @ self.params["W"].T                            # (B,H,T,K)  fwd: qW = q W  (SCORE-14)
        return dq, dk


class AdditiveAttention(ScoreAttention):
    """score[t,s] = w . tanh(q_t W_q + k_s W_k)  (Bahdanau's "concat"/MLP score, his v_a).

    Parameters: W_q (Kq, A), W_k (Kk, A), w (A,) (named w, not v, to stay apart from the values). Queries and keys may differ in width
    (an RNN decoder state against encoder states); in multi-head attention Kq = Kk = K.
    The hidden layer is formed for every (t, s) pair: memory B*H*T*S*A.
    """

    def __init__(self, d_q, d_k, d_attn, rng, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        self.add_param("W_q", glorot(rng, d_q, d_attn))           # (Kq,A)
        self.add_param("W_k", glorot(rng, d_k, d_attn))           # (Kk,A)
        self.add_param("w", rng.uniform(-1, 1, d_attn) * (3.0 / d_attn) ** 0.5)  # (A,)  unit-variance sum

    def score(self, q, k):
        p = self.params
        qp = q @ p["W_q"]                                        # (B,H,T,A)  (SCORE-15)
        kp = k @ p["W_k"]                                        # (B,H,S,A)  (SCORE-15)
        hidden = self.xp.tanh(qp[..., :, None, :] + kp[..., None, :, :])  # (B,H,T,S,A)  (SCORE-16)
        return hidden @ p["w"], (q, k, hidden)                   # (B,H,T,S)  (SCORE-17)

    def score_backward(self, dscores, cache):
        q, k, hidden = cache
        p, g = self.params, self.grads
        A_ = hidden.shape[-1]
        g["w"] += (hidden * dscores[..., None]).reshape(-1, A_).sum(axis=0)  # (A,)  over B,H,T,S  (SCORE-18)
        dpre = (dscores[..., None] * p["w"]) * (1.0 - hidden * hidden)  # (B,H,T,S,A)  tanh' = 1 - tanh^2  (SCORE-19)
        dqp = dpre.sum(axis=-2)                                  # (B,H,T,A)  qp broadcast over s  (SCORE-20)
        dkp = dpre.sum(axis=-3)                                  # (B,H,S,A)  kp broadcast over t  (SCORE-20)
        g["W_q"] += q.reshape(-1, q.shape[-1]).T @ dqp.reshape(-1, A_)  # (Kq,A)  (SCORE-21)
        g["W_k"] += k.reshape(-1, k.shape[-1]).T @ dkp.reshape(-1, A_)  # (Kk,A)  (SCORE-21)
        return dqp @ p["W_q"].T, dkp @ p["W_k"].T                # (B,H,T,Kq), (B,H,S,Kk)  (SCORE-22)


class CosineAttention(ScoreAttention):
    """score = g * cos(q, k) = g * (q/|q|) . (k/|k|), with |x| = sqrt(x . x + eps).

    The cosine lies in [-1, 1] whatever d_k is, so it never saturates softmax by itself; the
    scale g sets how peaked the weights can be. learn_scale=True makes g a parameter (shape (1,)),
    False keeps it fixed at `scale`.
    """

    def __init__(self, learn_scale=True, scale=COSINE_SCALE, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        self.learn_scale = learn_scale
        if learn_scale:
            self.add_param("g", np.array([scale]))               # (1,)
        else:
            self.fixed_scale = float(scale)

    def _normalise(self, x):                                     # x: (...,K)
        r = 1.0 / self.xp.sqrt((x * x).sum(axis=-1, keepdims=True) + COSINE_EPS)  # (...,1)
        return x * r, r                                          # (...,K)  (SCORE-23)

    def score(self, q, k):
        qn, rq = self._normalise(q)                              # (B,H,T,K)
        kn, rk = self._normalise(k)                              # (B,H,S,K)
        cos = qn @ kn.swapaxes(-1, -2)                           # (B,H,T,S)  (SCORE-24)
        g = self.params["g"] if self.learn_scale else self.fixed_scale
        return g * cos, (qn, rq, kn, rk, cos)                    # (B,H,T,S)  (SCORE-25)

    def score_backward(self, dscores, cache):
        qn, rq, kn, rk, cos = cache
        if self.learn_scale:
            self.grads["g"] += (dscores * cos).sum()             # (1,)  fwd: scores = g cos  (SCORE-26)
            dcos = dscores * self.params["g"]                    # (B,H,T,S)  (SCORE-26)
        else:
            dcos = dscores * self.fixed_scale                    # (B,H,T,S)  (SCORE-26)
        dqn = dcos @ kn                                          # (B,H,T,K)  (SCORE-27)
        dkn = dcos.swapaxes(-1, -2) @ qn                         # (B,H,S,K)  (SCORE-27)
        # fwd: xn = x r, r = (x.x + eps)^(-1/2); the component of dxn along xn is removed.
        dq = rq * (dqn - qn * (dqn * qn).sum(axis=-1, keepdims=True))  # (B,H,T,K)  (SCORE-28)
        dk = rk * (dkn - kn * (dkn * kn).sum(axis=-1, keepdims=True))  # (B,H,S,K)  (SCORE-28)
        return dq, dk


SCORES = ("scaled_dot", "dot", "general", "additive", "cosine")


def make_score_attention(score, d_k, rng, xp=None, dtype="float32"):
    """The attention layer for a score name (one of SCORES) and head width d_k.

    "scaled_dot" gives the paper's ScaledDotProductAttention; the others come from this file.
    Parameters are drawn from `rng` (the additive hidden width A is d_k).
    """
    if score == "scaled_dot":
        from npformer.layers.attention import ScaledDotProductAttention  # attention.py imports this file
        return ScaledDotProductAttention(xp, dtype)
    if score == "dot":
        return DotAttention(xp, dtype)
    if score == "general":
        return GeneralAttention(d_k, rng, xp, dtype)
    if score == "additive":
        return AdditiveAttention(d_k, d_k, d_k, rng, xp, dtype)
    if score == "cosine":
        return CosineAttention(True, COSINE_SCALE, xp, dtype)
    raise ValueError(f"attention score must be one of {', '.join(SCORES)}; got {score!r}.")


@contextlib.contextmanager
def hard_attention(model, where="all"):
    """Within the block, every attention of `model` (or only those named with "cross_attn"
    when where="cross") uses one-hot argmax weights instead of softmax. For decoding only.

    The paper's ScaledDotProductAttention is swapped for the equivalent ScaledDotAttention
    for the duration, and everything is restored on exit.
    """
    if where not in ("all", "cross"):
        raise ValueError(f"where must be 'all' or 'cross', got {where!r}.")
    swapped, flagged = [], []
    for name, layer in model.named_layers():
        att = getattr(layer, "attention", None)
        if not isinstance(att, Layer) or (where == "cross" and "cross_attn" not in name):
            continue
        if not isinstance(att, ScoreAttention):
            hard = ScaledDotAttention(att.xp, att.dtype)
            swapped.append((layer, att))
            layer.attention = att = hard
        att.hard = True
        flagged.append(att)
    try:
        yield len(flagged)
    finally:
        for att in flagged:
            att.hard = False
        for layer, original in swapped:
            layer.attention = original
