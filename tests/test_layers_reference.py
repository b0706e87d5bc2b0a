"""Every layer's forward against a slow, obvious float64 reference (loops or the textbook
formula), plus the edge cases: T = 1, one head, S != T, all-padding rows, logits of +-1e4."""

import math

import numpy as np
import pytest

from npformer.backend import default_rng
from npformer.layers import (Dropout, Embedding, FeedForward, LayerNorm, LearnedPositionalEncoding, Linear,
                             MultiHeadAttention, ScaledDotProductAttention, SinusoidalPositionalEncoding, TokenError,
                             softmax, softmax_backward)
from npformer.masks import causal_keep, padding_keep, target_keep

from helpers import close, rand

F64 = "float64"


def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------- references, one loop at a time

def ref_softmax_row(row, keep_row):
    kept = [j for j in range(len(row)) if keep_row[j]]
    out = [0.0] * len(row)
    if not kept:
        return out
    m = max(row[j] for j in kept)
    total = sum(math.exp(row[j] - m) for j in kept)
    for j in kept:
        out[j] = math.exp(row[j] - m) / total
    return out


def ref_attention(q, k, v, keep):
    """q (T,K), k (S,K), v (S,K), keep (T,S): one head, loops over queries and keys."""
    T, K = q.shape
    out, weights = np.zeros((T, v.shape[1])), np.zeros((T, k.shape[0]))
    for t in range(T):
        scores = [sum(q[t, i] * k[s, i] for i in range(K)) / math.sqrt(K) for s in range(k.shape[0])]
        weights[t] = ref_softmax_row(scores, keep[t])
        for s in range(k.shape[0]):
            out[t] += weights[t, s] * v[s]
    return out, weights


def ref_layernorm(x, gamma, beta, eps=1e-5):
    out = np.zeros_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        row = x[idx]
        mean = sum(row) / len(row)
        var = sum((r - mean) ** 2 for r in row) / len(row)
        out[idx] = [(r - mean) / math.sqrt(var + eps) * g + b for r, g, b in zip(row, gamma, beta)]
    return out


# ---------------------------------------------------------------- the tests

def test_linear(xp, dev, host):
    layer = Linear(4, 3, rng(), xp, F64)
    x = rand(2, 5, 4)
    W, b = host(layer.params["W"]), host(layer.params["b"])
    ref = np.zeros((2, 5, 3))
    for i, j in np.ndindex(2, 5):
        for o in range(3):
            ref[i, j, o] = sum(x[i, j, k] * W[k, o] for k in range(4)) + b[o]
    close(host(layer.forward(dev(x))), ref)


def test_embedding_rows_and_repeated_ids(xp, dev, host):
    layer = Embedding(6, 4, rng(), xp, F64)
    ids = np.array([[3, 3, 5], [1, 3, 0]])
    W = host(layer.params["W"])
    close(host(layer.forward(dev(ids))), W[ids])
    layer.zero_grad()
    layer.backward(dev(np.ones((2, 3, 4))))
    counts = host(layer.grads["W"])[:, 0]
    assert counts.tolist() == [1, 1, 0, 3, 0, 1]                # id 3 appears three times: three rows summed


def test_embedding_variance_after_scaling(xp, host):
    W = host(Embedding(1000, 64, rng(), xp, F64).params["W"])
    assert abs((W * 8.0).var() - 1.0) < 0.05                     # sqrt(D) * W has unit variance


@pytest.mark.parametrize("ids,match", [
    (np.array([[3, 13]]), "13, outside the vocabulary 0..12"),
    (np.array([[-1, 3]]), "-1, outside"),
    (np.array([[3.0, 4.0]]), "must be integers"),
])
def test_embedding_rejects_bad_ids_on_the_host(xp, dev, ids, match):
    layer = Embedding(13, 4, rng(), xp, F64)
    with pytest.raises(TokenError, match=match):
        layer.forward(ids)
    with pytest.raises(TokenError, match=match):
        layer.forward(dev(ids))


def test_sinusoidal_table_is_the_paper_formula(xp, dev, host):
    D, L = 6, 9
    pe = SinusoidalPositionalEncoding(L, D, xp, F64)
    P = host(pe.P)
    for pos in range(L):
        for i in range(D):
            angle = pos / 10000 ** ((i - i % 2) / D)
            close(P[pos, i], math.sin(angle) if i % 2 == 0 else math.cos(angle))
    x = rand(2, 4, D)
    close(host(pe.forward(dev(x), start=3)), x + P[3:7])


def test_sinusoidal_odd_width(xp, host):
    P = host(SinusoidalPositionalEncoding(5, 7, xp, F64).P)
    assert P.shape == (5, 7) and np.all(P[0, 0::2] == 0) and np.all(P[0, 1::2] == 1)


def test_learned_positions_add_their_rows(xp, dev, host):
    pe = LearnedPositionalEncoding(8, 3, rng(), xp, F64)
    x = rand(2, 4, 3)
    close(host(pe.forward(dev(x), start=2)), x + host(pe.params["P"])[2:6])


def test_dropout_scales_masks_and_reuses_the_mask(xp, dev, host):
    layer = Dropout(0.25, default_rng(xp, 0), xp, "float32")
    x = np.ones((200, 100), dtype=np.float32)
    y = host(layer.forward(dev(x)))
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    close(y[kept], np.full(kept.sum(), 1 / 0.75), tol=1e-6)     # inverted dropout: E[y] = x
    dx = host(layer.backward(dev(np.full_like(x, 2.0))))
    assert np.array_equal(dx != 0, kept)                         # the forward's mask, not a new one
    assert np.array_equal(host(layer.forward(dev(x), training=False)), x)


def test_dropout_rejects_p_of_one(xp):
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        Dropout(1.0, default_rng(xp, 0), xp)


def test_softmax_against_the_textbook(xp, dev, host):
    x = rand(3, 7)
    keep = np.random.default_rng(1).random((3, 7)) > 0.3
    keep[2] = False                                              # a row masked everywhere
    y = host(softmax(dev(x), dev(keep)))
    for r in range(3):
        close(y[r], ref_softmax_row(list(x[r]), keep[r]))
    assert np.all(y[2] == 0) and np.all(y[~keep] == 0)


def test_softmax_in_place_gives_what_the_copying_call_gives(xp, dev, host):
    """out=x (attention's scores, and its dA in backward) builds the result in x's memory."""
    x, dy = rand(2, 3, 4, 5), rand(2, 3, 4, 5, seed=1)
    keep = np.random.default_rng(2).random((2, 1, 4, 5)) > 0.4
    keep[1, 0, 2] = False                                        # a row masked everywhere
    y = softmax(dev(x), dev(keep))
    scores = dev(x.copy())
    softmax(scores, dev(keep), out=scores)
    assert np.array_equal(host(scores), host(y))                 # the result is in scores' memory
    dx = softmax_backward(dev(dy), y)
    grad = dev(dy.copy())
    softmax_backward(grad, y, out=grad)
    assert np.array_equal(host(grad), host(dx))


@pytest.mark.parametrize("row", [[-1000.0, 1.0], [1e4, -1e4, 0.0], [1e4, 1e4]])
def test_softmax_is_stable(xp, dev, host, row):
    for dtype in (np.float32, np.float64):
        y = host(softmax(dev(np.array([row], dtype=dtype))))
        assert np.all(np.isfinite(y)) and abs(y.sum() - 1) < 1e-6
        close(y[0], ref_softmax_row(row, [True] * len(row)), tol=1e-6)


@pytest.mark.parametrize("T,S,causal", [(4, 6, False), (1, 3, False), (5, 5, True), (1, 1, True)])
def test_attention_against_loops(xp, dev, host, T, S, causal):
    B, H, K = 2, 3, 4
    q, k, v = rand(B, H, T, K, seed=1), rand(B, H, S, K, seed=2), rand(B, H, S, K, seed=3)
    ids = np.array([[3] * S, [3] * max(1, S - 2) + [0] * min(S - 1, 2)])
    keep = padding_keep(dev(ids), 0)
    if causal:
        keep = keep & causal_keep(S, xp)
    out, A = ScaledDotProductAttention(xp, F64).forward(dev(q), dev(k), dev(v), keep)
    keep_full = np.broadcast_to(host(keep), (B, H, T, S))
    for b, h in np.ndindex(B, H):
        ref_out, ref_A = ref_attention(q[b, h], k[b, h], v[b, h], keep_full[b, h])
        close(host(out)[b, h], ref_out)
        close(host(A)[b, h], ref_A)


def test_all_padding_row_gives_zeros_not_nan(xp, dev, host):
    q, k, v = rand(2, 1, 3, 4), rand(2, 1, 5, 4), rand(2, 1, 5, 4)
    keep = padding_keep(dev(np.array([[3, 4, 5, 0, 0], [0, 0, 0, 0, 0]])), 0)
    layer = ScaledDotProductAttention(xp, F64)
    out, A = layer.forward(dev(q), dev(k), dev(v), keep)
    assert np.all(host(out)[1] == 0) and np.all(host(A)[1] == 0)
    grads = [host(g) for g in layer.backward(dev(np.ones((2, 1, 3, 4))))]
    assert all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("n_heads", [1, 2, 4])
def test_multihead_against_per_head_loops(xp, dev, host, n_heads):
    D, T, S = 8, 3, 5
    mha = MultiHeadAttention(D, n_heads, rng(), xp, F64)
    P = {k: host(v) for k, v in mha.params.items()}
    x, m = rand(2, T, D, seed=4), rand(2, S, D, seed=5)
    ids = np.array([[3, 4, 5, 6, 7], [3, 4, 0, 0, 0]])
    out = host(mha.forward(dev(x), padding_keep(dev(ids), 0), memory=dev(m)))
    K = D // n_heads
    for b in range(2):
        heads = []
        for h in range(n_heads):
            cols = slice(h * K, (h + 1) * K)
            q = x[b] @ P["Wq"][:, cols] + P["bq"][cols]
            k = m[b] @ P["Wk"][:, cols] + P["bk"][cols]
            v = m[b] @ P["Wv"][:, cols] + P["bv"][cols]
            heads.append(ref_attention(q, k, v, np.broadcast_to(ids[b] != 0, (T, S)))[0])
        close(out[b], np.concatenate(heads, axis=1) @ P["Wo"] + P["bo"])


def test_multihead_rejects_indivisible_width(xp):
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3, rng(), xp)


def test_masked_keys_and_future_tokens_change_nothing(xp, dev, host):
    mha = MultiHeadAttention(8, 2, rng(), xp, F64)
    x = rand(1, 5, 8)
    ids = np.array([[3, 4, 5, 0, 0]])
    keep = target_keep(dev(ids), 0)
    base = host(mha.forward(dev(x), keep))
    x2 = x.copy()
    x2[0, 3:] += 10.0                                            # padded keys, and the future of t <= 2
    changed = host(mha.forward(dev(x2), keep))
    close(changed[0, :3], base[0, :3])                            # queries 0..2 cannot see positions 3, 4
    x3 = x.copy()
    x3[0, 2] += 1.0
    assert not np.allclose(host(mha.forward(dev(x3), keep))[0, 2], base[0, 2])  # the check can fail


def test_layernorm_against_the_textbook(xp, dev, host):
    ln = LayerNorm(5, xp=xp, dtype=F64)
    ln.params["gamma"][...] = dev(rand(5, seed=1))
    ln.params["beta"][...] = dev(rand(5, seed=2))
    x = rand(2, 3, 5) * 10 + 3
    close(host(ln.forward(dev(x))), ref_layernorm(x, host(ln.params["gamma"]), host(ln.params["beta"])), tol=1e-10)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feedforward_against_the_formula(xp, dev, host, activation):
    ffn = FeedForward(4, 6, rng(), activation, xp, F64)
    P = {k: host(v) for k, v in ffn.params.items()}
    x = rand(2, 3, 4)
    h = x @ P["W1"] + P["b1"]
    if activation == "relu":
        a = np.maximum(h, 0)
    else:
        a = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
    close(host(ffn.forward(dev(x))), a @ P["W2"] + P["b2"])
    erf = np.vectorize(math.erf)
    close(a if activation == "gelu" else 0.5 * h * (1 + erf(h / math.sqrt(2))),
          0.5 * h * (1 + erf(h / math.sqrt(2))), tol=5e-3)       # the tanh form tracks exact GELU


def test_float32_stays_float32(xp, dev):
    x = dev(rand(2, 3, 8).astype(np.float32))
    mha = MultiHeadAttention(8, 2, rng(), xp)
    ln, ffn = LayerNorm(8, xp=xp), FeedForward(8, 16, rng(), "gelu", xp)
    y = ffn.forward(ln.forward(mha.forward(x, padding_keep(dev(np.array([[3, 3, 0], [3, 3, 3]])), 0))))
    assert y.dtype == np.float32
    assert mha.backward(ln.backward(ffn.backward(y))).dtype == np.float32
