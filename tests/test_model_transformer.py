"""The whole Transformer: shapes and tied weights, the mask properties, bad input refused in one
sentence before any math runs, and a tiny model that memorises one batch."""

import numpy as np
import pytest

from npformer import ConfigError, InputError, Transformer, TransformerConfig, cross_entropy
from npformer.backend import to_device, to_numpy

PAD = 0
SRC = np.array([[3, 4, 5, 6, 7, 8], [5, 3, 9, 0, 0, 0], [4, 0, 0, 0, 0, 0]])     # (3,6)  S = 6
TGT = np.array([[1, 3, 4, 5, 6], [1, 6, 2, 0, 0], [1, 2, 0, 0, 0]])           # (3,5)  T = 5


def tiny(xp, dtype="float64", **overrides):
    cfg = dict(src_vocab=11, tgt_vocab=9, d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout=0.0, max_len=12)
    cfg.update(overrides)
    return Transformer(cfg, seed=0, dtype=dtype, backend=xp)


def logits_of(model, src, tgt):
    return to_numpy(model.forward(src, tgt, training=False))


def assert_one_sentence(error):
    msg = str(error)
    assert "\n" not in msg and msg.endswith(".") and ". " not in msg[:-1], f"not one sentence: {msg!r}"


# ---------------------------------------------------------------- shapes, dtypes, tied weights

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_gives_logits_of_the_models_dtype_and_backend(xp, dtype):
    model = tiny(xp, dtype)
    logits = model.forward(SRC, TGT)
    assert logits.shape == (3, 5, 9) and logits.dtype == np.dtype(dtype)
    assert type(logits) is type(to_device(np.zeros(1), xp))
    loss, dlogits = cross_entropy(logits, TGT, PAD)
    model.zero_grad()
    model.backward(dlogits)
    for name, g in model.gradients().items():
        assert g.dtype == np.dtype(dtype) and np.isfinite(to_numpy(g)).all(), name


def test_tied_embeddings_are_one_matrix(xp):
    model = tiny(xp, tgt_vocab=11, tie_embeddings=True)
    names = set(model.parameters())
    assert "src_embed.W" in names and "tgt_embed.W" not in names and "generator.W" not in names
    W = model.src_embed.params["W"]                              # (V,D)
    W[3, 5] = 7.0                                                # one write shows in all three uses
    assert float(model.tgt_embed.params["W"][3, 5]) == 7.0 and float(model.generator.params["W"][5, 3]) == 7.0
    untied = tiny(xp, tgt_vocab=11)
    assert len(untied.parameters()) == len(model.parameters()) + 2


# ---------------------------------------------------------------- what the masks promise

@pytest.mark.parametrize("norm", ["post", "pre"])
def test_later_target_tokens_leave_earlier_logits_unchanged(xp, norm):
    model = tiny(xp, norm=norm)
    base = logits_of(model, SRC, TGT)
    rng = np.random.default_rng(0)
    for t in range(TGT.shape[1] - 1):
        changed = TGT.copy()
        changed[:, t + 1:] = rng.integers(0, 9, size=changed[:, t + 1:].shape)   # other words, or padding
        changed[0, t + 1] = 8 if TGT[0, t + 1] != 8 else 7       # row 0 surely differs at t+1
        out = logits_of(model, SRC, changed)
        np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], rtol=0, atol=1e-12)
        assert np.abs(out[0, t + 1:] - base[0, t + 1:]).max() > 1e-6, "the change did not reach later positions"


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_padded_source_positions_change_nothing(xp, norm):
    model = tiny(xp, norm=norm)
    base = logits_of(model, SRC, TGT)
    more_padding = np.concatenate([SRC, np.zeros((3, 4), int)], axis=1)       # S = 10
    np.testing.assert_allclose(logits_of(model, more_padding, TGT), base, rtol=0, atol=1e-12)
    model.src_embed.params["W"][PAD] += 3.0                      # what sits at every padded position
    np.testing.assert_allclose(logits_of(model, SRC, TGT), base, rtol=0, atol=1e-12)
    _, dlogits = cross_entropy(model.forward(SRC, TGT), TGT, PAD)
    model.zero_grad()
    model.backward(dlogits)
    assert not to_numpy(model.gradients()["src_embed.W"])[PAD].any(), "a padded position received gradient"
    real = SRC.copy()
    real[1, 1] = 10                                              # control: a real token does matter
    assert np.abs(logits_of(model, real, TGT)[1] - base[1]).max() > 1e-6


def test_a_source_row_of_only_padding_gives_finite_results(xp):
    model = tiny(xp)
    src = SRC.copy()
    src[2] = PAD
    logits = model.forward(src, TGT)
    loss, dlogits = cross_entropy(logits, TGT, PAD, 0.1)
    model.zero_grad()
    model.backward(dlogits)
    assert np.isfinite(to_numpy(logits)).all() and np.isfinite(loss)
    for name, g in model.gradients().items():
        assert np.isfinite(to_numpy(g)).all(), name


# ---------------------------------------------------------------- bad input: one sentence, before any math

BAD_INPUTS = [
    ("source id outside the vocabulary", lambda xp: (np.array([[3, 11]]), TGT[:1]),
     r"^source ids contain 11, outside the vocabulary 0\.\.10\.$"),
    ("target id outside the vocabulary", lambda xp: (SRC, np.array([[1, 2, 9], [1, 2, 0], [1, 0, 0]])),
     r"^target ids contain 9, outside the vocabulary 0\.\.8\.$"),
    ("negative id on the device (CuPy would wrap it)", lambda xp: (to_device(np.array([[3, -2]]), xp), TGT[:1]),
     r"^source ids contain -2, outside the vocabulary 0\.\.10\.$"),
    ("non-integer ids", lambda xp: (SRC.astype(float), TGT),
     r"^source ids must be integers, got dtype float64\.$"),
    ("longer than max_len", lambda xp: (np.full((3, 13), 3), TGT),
     r"^source ids have length 13, longer than max_len=12\.$"),
    ("mismatched batch sizes", lambda xp: (SRC, TGT[:2]),
     r"^source batch has 3 rows but target batch has 2\.$"),
    ("one-dimensional ids", lambda xp: (SRC[0], TGT[0]),
     r"^source ids must be a 2-D batch \(B, length\), got shape \(6,\)\.$"),
    ("ragged rows", lambda xp: ([[3, 4], [5]], TGT[:2]),
     r"^source ids must be a rectangular batch \(B, length\) of integers; pad the rows to one length\.$"),
    ("an empty batch", lambda xp: (np.zeros((0, 4), int), TGT[:0]),
     r"^source ids are empty \(shape \(0, 4\)\)\.$"),
]


@pytest.mark.parametrize("make,message", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_one_sentence_before_any_math(xp, make, message):
    model = tiny(xp)
    src, tgt = make(xp)
    with pytest.raises(InputError, match=message) as e:
        model.forward(src, tgt)
    assert_one_sentence(e.value)
    assert model.src_embed.cache is None and model.tgt_embed.cache is None, "math ran before the check"


BAD_CONFIGS = [
    ("d_model not divisible by n_heads", dict(d_model=10, n_heads=3),
     r"^d_model \(10\) must be divisible by n_heads \(3\)\.$"),
    ("tied embeddings, two vocabularies", dict(tie_embeddings=True),
     r"^tie_embeddings needs one vocabulary, but src_vocab=11 and tgt_vocab=9\.$"),
    ("dropout of 1", dict(dropout=1.0), r"^dropout must be a number in \[0, 1\), got 1\.0\.$"),
    ("dropout as text", dict(dropout="0.1"), r"^dropout must be a number, got '0\.1'\.$"),
    ("unknown norm", dict(norm="middle"), r"^norm must be one of post, pre; got 'middle'\.$"),
    ("zero layers", dict(n_layers=0), r"^n_layers must be an integer in \[1, 64\], got 0\.$"),
    ("pad_id outside", dict(pad_id=9), r"^pad_id 9 is outside the vocabulary\.$"),
]


@pytest.mark.parametrize("overrides,message", [b[1:] for b in BAD_CONFIGS], ids=[b[0] for b in BAD_CONFIGS])
def test_bad_configuration_gets_one_sentence(xp, overrides, message):
    with pytest.raises(ConfigError, match=message) as e:
        tiny(xp, **overrides)
    assert_one_sentence(e.value)


def test_config_from_dict_names_what_is_wrong():
    cfg = TransformerConfig(11, 9, d_model=16)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"^unknown configuration keys: colour\.$"):
        TransformerConfig.from_dict({**cfg.to_dict(), "colour": "red"})
    with pytest.raises(ConfigError, match=r"^the configuration lacks src_vocab\.$"):
        TransformerConfig.from_dict({"tgt_vocab": 9})


# ---------------------------------------------------------------- it can learn

def test_a_tiny_model_memorises_one_batch(xp):
    """Adam on one padded batch of a reversal task: the loss falls from about log V to near zero."""
    model = tiny(xp, n_layers=1)
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(3, 9, size=n)) for n in (6, 4, 5, 2)]
    src = np.array([r + [PAD] * (6 - len(r)) for r in rows])                      # (4,6)
    tgt = np.array([[1] + r[::-1] + [2] + [PAD] * (6 - len(r)) for r in rows])   # (4,8)  BOS, reversed, EOS
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]
    params, grads = model.parameters(), model.gradients()
    m = {k: p * 0 for k, p in params.items()}
    v = {k: p * 0 for k, p in params.items()}
    lr, b1, b2 = 0.01, 0.9, 0.999
    losses = []
    for step in range(1, 151):
        loss, dlogits = cross_entropy(model.forward(src, tgt_in), tgt_out, PAD)
        losses.append(loss)
        model.zero_grad()
        model.backward(dlogits)
        for k, p in params.items():                              # Adam, in place
            m[k] = b1 * m[k] + (1 - b1) * grads[k]
            v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
            p -= lr * (m[k] / (1 - b1 ** step)) / ((v[k] / (1 - b2 ** step)) ** 0.5 + 1e-8)
    assert losses[0] > 1.5 and losses[-1] < 0.02, f"loss {losses[0]:.3f} -> {losses[-1]:.4f}"
    assert np.array_equal(model.greedy_decode(src, max_len=7), tgt_out), "memorised, yet decodes otherwise"
