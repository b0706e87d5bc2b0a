"""The attention scores of layers/scores.py: each forward against a loop over (query, key)
pairs, masks, the plumbing into MultiHeadAttention and TransformerConfig, and hard attention.
(Their finite-difference checks are in gradcheck_cases.BEYOND_CASES, run by test_gradcheck_layers.)"""

import math

import numpy as np
import pytest

from npformer.errors import ConfigError
from npformer.layers import MultiHeadAttention, ScaledDotProductAttention
from npformer.layers.scores import (SCORES, AdditiveAttention, CosineAttention, DotAttention, GeneralAttention,
                                    ScaledDotAttention, hard_attention, make_score_attention)
from npformer.masks import causal_keep, padding_keep
from npformer.model import Transformer, TransformerConfig

from helpers import close, rand

F64 = "float64"


def layers(xp):
    rng = np.random.default_rng(0)
    return {
        "scaled_dot": ScaledDotAttention(xp, F64),
        "dot": DotAttention(xp, F64),
        "general": GeneralAttention(4, rng, xp, F64),
        "additive": AdditiveAttention(4, 4, 5, rng, xp, F64),
        "cosine": CosineAttention(True, 3.0, xp, F64),
    }



def ref_score(name, layer, q, k, host):
    """One score, one (query, key) pair, by the textbook formula."""
    P = {n: host(p) for n, p in layer.params.items()}
    if name == "scaled_dot":
        return sum(a * b for a, b in zip(q, k)) / math.sqrt(len(q))
    if name == "dot":
        return sum(a * b for a, b in zip(q, k))
    if name == "general":
        return sum(q[i] * P["W"][i, j] * k[j] for i in range(len(q)) for j in range(len(k)))
    if name == "additive":
        A = len(P["w"])
        hidden = [math.tanh(sum(q[i] * P["W_q"][i, a] for i in range(len(q)))
                            + sum(k[j] * P["W_k"][j, a] for j in range(len(k)))) for a in range(A)]
        return sum(P["w"][a] * hidden[a] for a in range(A))
    if name == "cosine":
        nq = math.sqrt(sum(a * a for a in q) + 1e-6)
        nk = math.sqrt(sum(b * b for b in k) + 1e-6)
        return P["g"][0] * sum(a * b for a, b in zip(q, k)) / (nq * nk)
    raise AssertionError(name)


def ref_attention(name, layer, q, k, v, keep, host):
    """q (T,K), k (S,K), v (S,K), keep (T,S): loops over queries and keys."""
    T, S = q.shape[0], k.shape[0]
    out, weights = np.zeros((T, v.shape[1])), np.zeros((T, S))
    for t in range(T):
        scores = [ref_score(name, layer, q[t], k[s], host) for s in range(S)]
        kept = [s for s in range(S) if keep[t, s]]
        if kept:
            m = max(scores[s] for s in kept)
            z = sum(math.exp(scores[s] - m) for s in kept)
            for s in kept:
                weights[t, s] = math.exp(scores[s] - m) / z
                out[t] += weights[t, s] * v[s]
    return out, weights


@pytest.mark.parametrize("name", SCORES)
@pytest.mark.parametrize("T,S,causal", [(3, 5, False), (1, 4, False), (4, 4, True)])
def test_forward_against_loops(xp, dev, host, name, T, S, causal):
    B, H, K = 2, 2, 4
    layer = layers(xp)[name]
    q, k, v = rand(B, H, T, K, seed=1), rand(B, H, S, K, seed=2), rand(B, H, S, K, seed=3)
    ids = np.array([[3] * S, [3] * max(1, S - 2) + [0] * min(S - 1, 2)])
    keep = padding_keep(dev(ids), 0)
    if causal:
        keep = keep & causal_keep(S, xp)
    out, A = layer.forward(dev(q), dev(k), dev(v), keep)
    keep_full = np.broadcast_to(host(keep), (B, H, T, S))
    for b, h in np.ndindex(B, H):
        ref_out, ref_A = ref_attention(name, layer, q[b, h], k[b, h], v[b, h], keep_full[b, h], host)
        close(host(out)[b, h], ref_out)
        close(host(A)[b, h], ref_A)


def test_scaled_dot_forms_agree(xp, dev, host):
    q, k, v = (dev(rand(2, 3, 4, 8, seed=s)) for s in (1, 2, 3))
    a = ScaledDotProductAttention(xp, F64).forward(q, k, v)[0]
    b = ScaledDotAttention(xp, F64).forward(q, k, v)[0]
    c = DotAttention(xp, F64).forward(q * 8 ** -0.5, k, v)[0]    # dot of a pre-scaled query
    close(host(a), host(b))
    close(host(a), host(c))


@pytest.mark.parametrize("name", SCORES)
def test_masked_keys_change_nothing_and_full_masks_give_zeros(xp, dev, host, name):
    layer = layers(xp)[name]
    q, k, v = rand(2, 1, 3, 4, seed=1), rand(2, 1, 5, 4, seed=2), rand(2, 1, 5, 4, seed=3)
    keep = padding_keep(dev(np.array([[3, 4, 5, 0, 0], [0, 0, 0, 0, 0]])), 0)  # row 1: nothing to attend to
    out, A = (host(a) for a in layer.forward(dev(q), dev(k), dev(v), keep))
    assert np.all(A[0, ..., 3:] == 0) and np.all(A[1] == 0) and np.all(out[1] == 0)
    k2, v2 = k.copy(), v.copy()
    k2[0, :, 3:] += 7.0
    v2[0, :, 3:] -= 5.0
    out2 = host(layer.forward(dev(q), dev(k2), dev(v2), keep)[0])
    close(out2[0], out[0])
    grads = layer.backward(dev(np.ones((2, 1, 3, 4))))
    assert all(np.all(np.isfinite(host(g))) for g in grads)
    assert np.all(host(grads[1])[0, :, 3:] == 0) and np.all(host(grads[2])[0, :, 3:] == 0)  # masked keys: no gradient


def test_cosine_ignores_the_length_of_queries_and_keys(xp, dev, host):
    layer = CosineAttention(False, 4.0, xp, F64)
    assert layer.parameters() == {}                              # a fixed scale is not a parameter
    q, k, v = rand(1, 2, 3, 4, seed=1), rand(1, 2, 5, 4, seed=2), rand(1, 2, 5, 4, seed=3)
    a = host(layer.forward(dev(q), dev(k), dev(v))[1])
    b = host(layer.forward(dev(q * 50.0), dev(k * 3.0), dev(v))[1])
    close(a, b, tol=1e-6)                                        # up to eps = 1e-6 inside the norms


def test_dot_saturates_with_width_and_scaling_does_not(xp, dev, host):
    """Why the paper divides by sqrt(d_k): with unit-variance q and k, the dot product's spread
    grows like sqrt(d_k), so softmax weights approach one-hot and their gradient vanishes."""
    peak = {}
    for K in (4, 256):
        q, k, v = (dev(rand(8, 1, 16, K, seed=s)) for s in (1, 2, 3))
        for name, layer in (("dot", DotAttention(xp, F64)), ("scaled", ScaledDotAttention(xp, F64))):
            peak[name, K] = float(host(layer.forward(q, k, v)[1]).max(axis=-1).mean())
    assert peak["dot", 256] > 0.9 and peak["scaled", 256] < 0.6
    assert abs(peak["scaled", 256] - peak["scaled", 4]) < 0.3


@pytest.mark.parametrize("score", SCORES)
def test_multihead_attention_picks_the_score(xp, score):
    mha = MultiHeadAttention(8, 2, np.random.default_rng(0), xp, F64, score)
    expected = {"scaled_dot": set(), "dot": set(), "general": {"W"}, "additive": {"W_q", "W_k", "w"},
                "cosine": {"g"}}[score]
    assert {n.split(".", 1)[1] for n in mha.parameters() if n.startswith("attention.")} == expected


def test_default_score_is_the_papers_layer(xp):
    assert isinstance(make_score_attention("scaled_dot", 4, None, xp), ScaledDotProductAttention)
    with pytest.raises(ValueError, match="must be one of"):
        make_score_attention("bilinear", 4, np.random.default_rng(0), xp)


def test_config_validates_and_passes_the_score(xp):
    with pytest.raises(ConfigError, match="attention_score must be one of"):
        TransformerConfig(src_vocab=7, tgt_vocab=7, attention_score="bilinear")
    cfg = TransformerConfig(src_vocab=7, tgt_vocab=7, d_model=8, n_heads=2, d_ff=16, n_layers=1, dropout=0.0,
                            attention_score="general")
    model = Transformer(cfg, backend=xp)
    names = set(model.parameters())
    for where in ("encoder.layers.0.self_attn", "decoder.layers.0.self_attn", "decoder.layers.0.cross_attn"):
        assert f"{where}.attention.W" in names
    logits = model.forward(np.array([[3, 4, 5]]), np.array([[1, 5, 4, 3]]))
    assert logits.shape == (1, 4, 7)


def test_hard_attention_is_one_hot_and_refuses_backward(xp, dev, host):
    layer = AdditiveAttention(4, 4, 5, np.random.default_rng(0), xp, F64)
    q, k, v = rand(2, 1, 3, 4, seed=1), rand(2, 1, 5, 4, seed=2), rand(2, 1, 5, 4, seed=3)
    keep = padding_keep(dev(np.array([[3, 4, 5, 0, 0], [3, 0, 0, 0, 0]])), 0)
    _, soft = layer.forward(dev(q), dev(k), dev(v), keep)
    layer.hard = True
    out, A = (host(a) for a in layer.forward(dev(q), dev(k), dev(v), keep))
    best = host(soft).argmax(axis=-1)                            # softmax is monotone: same winner
    assert np.array_equal(A.sum(axis=-1), np.ones((2, 1, 3))) and np.array_equal(A.argmax(axis=-1), best)
    close(out, np.take_along_axis(v, best[..., None], axis=2))  # out is the winning key's value
    assert np.all(best[1] == 0)                                   # only key 0 is kept in row 1
    with pytest.raises(RuntimeError, match="no gradient"):
        layer.backward(dev(np.ones((2, 1, 3, 4))))


def test_hard_attention_context_swaps_and_restores(xp):
    cfg = TransformerConfig(src_vocab=9, tgt_vocab=9, d_model=8, n_heads=2, d_ff=16, n_layers=2, dropout=0.0)
    model = Transformer(cfg, backend=xp)
    src = np.array([[3, 4, 5, 6], [7, 8, 0, 0]])
    soft = model.greedy_decode(src, max_len=6)
    with hard_attention(model, "cross") as n:
        assert n == 2 and isinstance(model.decoder.layers[0].cross_attn.attention, ScaledDotAttention)
        assert isinstance(model.encoder.layers[0].self_attn.attention, ScaledDotProductAttention)
        hard = model.greedy_decode(src, max_len=6)
    with hard_attention(model) as n:
        assert n == 6
    assert hard.shape[0] == 2 and hard.dtype.kind == "i"
    assert all(isinstance(att, ScaledDotProductAttention) for _, layer in model.named_layers()
               for att in [getattr(layer, "attention", None)] if att is not None)
    assert np.array_equal(model.greedy_decode(src, max_len=6), soft)
