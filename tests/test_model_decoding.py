"""Greedy decoding and beam search: cached keys and values give exactly the tokens of full
recomputation, beam 1 is greedy, a wide beam is an exhaustive search, rows are independent,
and the output format is the one documented (tokens after BOS, EOS kept, pad after)."""

import itertools

import numpy as np
import pytest

from npformer import InputError, Transformer
from npformer.backend import to_device, to_numpy
from npformer.layers.softmax import MASK_FILL
from npformer.loss import log_softmax
from npformer.model.decoding import _penalty

PAD, BOS, EOS = 0, 1, 2


def tiny(xp, dtype="float64", seed=1, eos_bias=1.5, **overrides):
    """A random model whose EOS logit is raised a little, so rows end at different steps."""
    cfg = dict(src_vocab=11, tgt_vocab=9, d_model=16, n_heads=2, d_ff=32, n_layers=2, dropout=0.0, max_len=12)
    cfg.update(overrides)
    model = Transformer(cfg, seed=seed, dtype=dtype, backend=xp)
    model.generator.params["b"][EOS] = eos_bias
    return model


def source(B=6, S=7, seed=0):
    """Random source rows with different amounts of padding (row 2 is a single token)."""
    src = np.random.default_rng(seed).integers(3, 11, size=(B, S))
    for row, length in ((1, 4), (2, 1), (4, 2)):
        if row < B:
            src[row, length:] = PAD
    return src


def next_logp(model, logits):
    """Log-probabilities of the next token as decoding defines them: pad is never a word."""
    logits = logits.copy()
    logits[..., PAD] = MASK_FILL
    return log_softmax(logits)


def greedy_by_recomputation(model, src, max_len):
    """Greedy decoding the slow way: the whole prefix through the decoder at every step, no cache."""
    memory, src_keep = model.encode(to_device(src, model.xp))
    B = src.shape[0]
    prefix = np.full((B, 1), BOS)
    done = np.zeros(B, bool)
    for _ in range(max_len):
        logits = model.decode(to_device(prefix, model.xp), memory, src_keep)      # (B,t,V)
        nxt = to_numpy(next_logp(model, logits[:, -1]).argmax(axis=-1))
        nxt[done] = PAD
        prefix = np.concatenate([prefix, nxt[:, None]], axis=1)
        done |= nxt == EOS
        if done.all():
            break
    return prefix[:, 1:]


def check_format(out, max_len):
    assert out.dtype.kind == "i" and out.ndim == 2 and 1 <= out.shape[1] <= max_len
    for row in out:
        ends = np.flatnonzero(row == EOS)
        stop = ends[0] + 1 if ends.size else len(row)
        assert (row[:stop] != PAD).all(), f"pad before the end of {row}"
        assert (row[stop:] == PAD).all(), f"a token after EOS in {row}"


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_cached_greedy_gives_the_tokens_of_full_recomputation(xp, norm):
    model = tiny(xp, norm=norm)
    src = source()
    out = model.greedy_decode(src, max_len=10, bos_id=BOS, eos_id=EOS)
    assert np.array_equal(out, greedy_by_recomputation(model, src, 10))
    check_format(out, 10)
    lengths = [int(np.flatnonzero(r == EOS)[0]) + 1 if (r == EOS).any() else None for r in out]
    assert len(set(lengths)) >= 3, f"too little variety to test: {lengths}"


def test_cached_step_logits_equal_full_logits(xp):
    """Step by step with the cache, one chunk of three positions, and no cache: the same logits."""
    model = tiny(xp)
    src, tgt = source(), np.random.default_rng(1).integers(3, 9, size=(6, 5))
    tgt[:, 0] = BOS
    memory, src_keep = model.encode(to_device(src, xp))
    full = to_numpy(model.decode(to_device(tgt, xp), memory, src_keep))            # (B,T,V)
    caches = [{} for _ in model.decoder.layers]
    steps = [to_numpy(model.decode(to_device(tgt[:, t:t + 1], xp), memory, src_keep, caches=caches, start=t))
             for t in range(5)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=0, atol=1e-12)
    caches = [{} for _ in model.decoder.layers]
    chunk = to_numpy(model.decode(to_device(tgt[:, :3], xp), memory, src_keep, caches=caches))  # prefill
    rest = to_numpy(model.decode(to_device(tgt[:, 3:], xp), memory, src_keep, caches=caches, start=3))
    np.testing.assert_allclose(np.concatenate([chunk, rest], axis=1), full, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype,norm,seed", [("float64", "post", 1), ("float64", "pre", 2), ("float32", "post", 3)])
def test_beam_one_equals_greedy(xp, dtype, norm, seed):
    model = tiny(xp, dtype, seed=seed, norm=norm)
    src = source(seed=seed)
    greedy = model.greedy_decode(src, max_len=10, bos_id=BOS, eos_id=EOS)
    for alpha in (0.0, 0.6):
        beam = model.beam_search(src, beam_size=1, max_len=10, bos_id=BOS, eos_id=EOS, length_penalty=alpha)
        assert np.array_equal(beam, greedy), f"alpha {alpha}:\n{beam}\n!=\n{greedy}"


def scores_by_teacher_forcing(model, src, outputs, alpha):
    """Each output's log-probability / lp(length), through the uncached decoder. src (N,S) host
    ids and outputs (N lists of tokens after BOS) pair up row by row."""
    L = max(len(o) for o in outputs)
    tgt_in = np.array([[BOS] + o[:-1] + [PAD] * (L - len(o)) for o in outputs])  # (N,L)
    memory, src_keep = model.encode(to_device(src, model.xp))
    logp = to_numpy(next_logp(model, model.decode(to_device(tgt_in, model.xp), memory, src_keep)))
    return np.array([sum(logp[i, t, w] for t, w in enumerate(o)) / _penalty(len(o), alpha)
                     for i, o in enumerate(outputs)])


def unpadded(out):
    return [list(r[r != PAD]) for r in out]


def every_output(model, max_len):
    """Every possible output: non-pad tokens, ended by EOS or by max_len."""
    words = [w for w in range(model.cfg.tgt_vocab) if w not in (PAD, EOS)]
    return ([list(p) + [EOS] for n in range(max_len) for p in itertools.product(words, repeat=n)]
            + [list(p) for p in itertools.product(words, repeat=max_len)])


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_a_beam_wider_than_every_candidate_is_an_exhaustive_search(xp, alpha):
    """V = 5 (3 words besides EOS) and max_len 4: at most 27 live prefixes, 108 candidates a step,
    so a beam of 108 never drops one and must return the best of all 121 outputs, with its score."""
    model = tiny(xp, tgt_vocab=5, eos_bias=0.5)
    src = source(B=3, S=5)
    beam, score = model.beam_search(src, beam_size=108, max_len=4, bos_id=BOS, eos_id=EOS, length_penalty=alpha,
                                    return_scores=True)
    outputs = every_output(model, 4)
    for b in range(3):
        scores = scores_by_teacher_forcing(model, np.repeat(src[b:b + 1], len(outputs), 0), outputs, alpha)
        assert unpadded(beam)[b] == outputs[int(np.argmax(scores))], f"row {b}"
        assert abs(score[b] - scores.max()) <= 1e-10, f"row {b}: {score[b]} != {scores.max()}"


def test_beam_search_rows_are_independent_and_scored_right(xp):
    """Decoding the batch gives each row what decoding it alone gives, and each reported score is
    what the uncached decoder gives that output: the cache reordering never mixes hypotheses."""
    model = tiny(xp, eos_bias=0.5)
    src = source()
    batch, score = model.beam_search(src, beam_size=3, max_len=8, bos_id=BOS, eos_id=EOS, return_scores=True)
    check_format(batch, 8)
    np.testing.assert_allclose(score, scores_by_teacher_forcing(model, src, unpadded(batch), 0.6), rtol=1e-10)
    for b in range(len(src)):
        alone = model.beam_search(src[b:b + 1], beam_size=3, max_len=8, bos_id=BOS, eos_id=EOS)[0]
        assert np.array_equal(batch[b, :len(alone)], alone) and (batch[b, len(alone):] == PAD).all()


def test_beam_search_can_beat_greedy(xp):
    """Not a theorem, but true of this model and batch: with no length penalty a beam of 4 scores
    at least as well as greedy on every row, and better on some."""
    model = tiny(xp, eos_bias=0.5)
    src = source()
    greedy = model.greedy_decode(src, max_len=6)
    beam, score = model.beam_search(src, beam_size=4, max_len=6, length_penalty=0.0, return_scores=True)
    g = scores_by_teacher_forcing(model, src, unpadded(greedy), 0.0)
    assert (score >= g - 1e-12).all() and (score > g + 1e-6).any(), (g, score)


def test_decoding_stops_at_the_models_max_len(xp):
    model = tiny(xp, eos_bias=-5.0, max_len=6)                   # EOS almost never: rows run to the end
    assert model.greedy_decode(source(S=5), max_len=50).shape == (6, 6)
    assert model.beam_search(source(S=5), beam_size=2, max_len=50).shape == (6, 6)


def test_all_padding_source_row_decodes(xp):
    model = tiny(xp)
    src = source()
    src[3] = PAD
    check_format(model.greedy_decode(src, max_len=5), 5)
    check_format(model.beam_search(src, beam_size=3, max_len=5), 5)


@pytest.mark.parametrize("kwargs,message", [
    (dict(max_len=0), r"max_len must be a positive integer, got 0\."),
    (dict(beam_size=0), r"beam_size must be a positive integer, got 0\."),
    (dict(beam_size=2.5), r"beam_size must be a positive integer, got 2\.5\."),
    (dict(bos_id=9), r"bos_id 9 is outside the target vocabulary 0\.\.8\."),
    (dict(eos_id=0), r"eos_id 0 equals pad_id, so it could not be told apart from padding\."),
    (dict(length_penalty=-1), r"length_penalty must be a number in \[0, 10\], got -1\."),
])
def test_bad_decoding_arguments_get_one_sentence(xp, kwargs, message):
    model = tiny(xp)
    with pytest.raises(InputError, match=f"^{message}$"):
        model.beam_search(source(), **kwargs)
    if "beam_size" not in kwargs and "length_penalty" not in kwargs:
        with pytest.raises(InputError, match=f"^{message}$"):
            model.greedy_decode(source(), **kwargs)


def test_decoding_checks_the_source(xp):
    model = tiny(xp)
    with pytest.raises(InputError, match=r"^source ids contain 11, outside the vocabulary 0\.\.10\.$"):
        model.greedy_decode(np.array([[3, 11]]))
    with pytest.raises(InputError, match=r"^source ids contain -1, outside the vocabulary 0\.\.10\.$"):
        model.beam_search(to_device(np.array([[3, -1]]), xp))
