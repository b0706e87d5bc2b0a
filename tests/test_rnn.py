"""The RNN encoder-decoder: padding through time, the attention weights, decoding, hard
attention, checkpoints, and the trainer's --model switch. (Finite-difference checks of every
parameter are in gradcheck_cases.BEYOND_CASES.)"""

import numpy as np
import pytest

from npformer.errors import ConfigError, InputError
from npformer.gradcheck import assert_all_pass, check_gradients
from npformer.layers import TokenError
from npformer.loss import cross_entropy
from npformer.model import load
from npformer.model.rnn import RNNConfig, RNNSeq2Seq

from helpers import close

F64 = "float64"
SRC = np.array([[3, 4, 5, 6, 7], [5, 6, 0, 0, 0]])
TGT = np.array([[1, 7, 6, 5, 4, 3], [1, 6, 5, 0, 0, 0]])


def model(xp, attention, dtype=F64, seed=0):
    return RNNSeq2Seq(RNNConfig(9, 9, d_embed=6, d_hidden=8, attention=attention, d_attn=5),
                      seed=seed, dtype=dtype, backend=xp)


@pytest.mark.parametrize("attention", [None, "bahdanau"])
def test_padding_changes_nothing(xp, host, attention):
    """Extra padding columns on the source and the target leave every real logit as it was,
    and a row's logits do not depend on the other rows of the batch."""
    m = model(xp, attention)
    base = host(m.forward(SRC, TGT))
    wider = host(m.forward(np.pad(SRC, ((0, 0), (0, 3))), np.pad(TGT, ((0, 0), (0, 2)))))
    close(wider[:, :6], base)
    alone = host(m.forward(SRC[1:, :2], TGT[1:, :3]))
    close(alone[0], base[1, :3])


def test_bahdanau_weights_are_a_distribution_over_real_tokens(xp, host):
    m = model(xp, "bahdanau")
    m.forward(SRC, TGT)
    A = host(m.weights)                                          # (B,T,S)
    assert A.shape == (2, 6, 5)
    close(A.sum(axis=-1), np.ones((2, 6)))
    assert np.all(A[1, :, 2:] == 0)                              # padded source positions get nothing


def test_without_attention_the_source_enters_only_through_the_last_state(xp, dev, host):
    """Changing a source token changes h_S, so it changes the logits; and the gradient that
    reaches the encoder states enters at the last one only (checked through the embeddings:
    every source token's embedding gets gradient, via the recurrence)."""
    m = model(xp, None)
    assert not hasattr(m, "attention") and m.weights is None
    logits = m.forward(SRC, TGT)
    m.zero_grad()
    m.backward(dev(np.ones(logits.shape)))
    g = host(m.src_embed.grads["W"])
    assert np.all(g[[3, 4, 5, 6, 7]].any(axis=1)) and not g[[1, 2, 8]].any()


@pytest.mark.parametrize("attention", [None, "bahdanau"])
def test_gradients_through_more_steps(xp, dev, attention):
    """Random-direction checks of every parameter over 9 source and 10 target steps, padded."""
    m = model(xp, attention, seed=3)
    rng = np.random.default_rng(0)
    src = rng.integers(3, 9, size=(3, 9))
    src[1, 5:] = 0
    src[2, 1:] = 0
    tgt = np.concatenate([np.ones((3, 1), int), rng.integers(3, 9, size=(3, 9))], axis=1)
    tgt[2, 4:] = 0
    m.zero_grad()
    results = check_gradients("RNN", lambda: m.forward(src, tgt), lambda d: m.backward(d) or {},
                              dict(m.parameters()), m.gradients(), max_elements=4, directions=1)
    assert_all_pass(results)


@pytest.mark.parametrize("attention", [None, "bahdanau"])
def test_a_few_steps_of_descent_lower_the_loss(xp, attention):
    m = model(xp, attention)
    params, grads = m.parameters(), m.gradients()
    tgt_out = np.concatenate([TGT[:, 1:], np.zeros((2, 1), int)], axis=1)
    tgt_out[0, 5] = 2
    tgt_out[1, 2] = 2
    losses = []
    for _ in range(30):
        loss, d = cross_entropy(m.forward(SRC, TGT), tgt_out)
        losses.append(loss)
        m.zero_grad()
        m.backward(d)
        for k in params:
            params[k] -= 0.5 * grads[k]
    assert losses[-1] < 0.5 * losses[0]


def test_greedy_decode_format_and_hard_attention(xp, host):
    m = model(xp, "bahdanau")
    out = m.greedy_decode(SRC, max_len=7)
    assert isinstance(out, np.ndarray) and out.dtype.kind == "i" and out.shape[0] == 2 and out.shape[1] <= 7
    assert not np.any(out == 1)                                  # BOS is not part of the output
    for row in out:                                              # after EOS only padding
        hits = np.flatnonzero(row == 2)
        if hits.size:
            assert np.all(row[hits[0] + 1:] == 0)
        assert not np.any(row[:hits[0] if hits.size else len(row)] == 0)
    hard = m.greedy_decode(SRC, max_len=7, hard=True)
    A = host(m.weights)
    assert np.array_equal(A.max(axis=-1), np.ones(A.shape[:2]))  # one-hot at every step
    assert m.attention.hard is False                             # switched off again
    assert hard.shape[0] == 2
    with pytest.raises(ConfigError, match="needs a model with attention"):
        model(xp, None).greedy_decode(SRC, hard=True)


def test_decoding_agrees_with_teacher_forcing(xp, host):
    """Feeding the greedy output back as tgt_in must reproduce the same argmax tokens."""
    for attention in (None, "bahdanau"):
        m = model(xp, attention)
        out = m.greedy_decode(SRC[:1], max_len=5)                # (1,L)
        tgt_in = np.concatenate([[[1]], out[:, :-1]], axis=1)
        logits = host(m.forward(SRC[:1], tgt_in))
        logits[..., 0] = -np.inf                                 # decoding never picks pad
        assert np.array_equal(logits.argmax(axis=-1)[0], out[0])


def test_bad_input_is_refused(xp):
    m = model(xp, None)
    with pytest.raises(TokenError):
        m.forward(np.array([[3, 9]]), TGT[:1])
    with pytest.raises(InputError, match="rows"):
        m.forward(SRC, TGT[:1])
    with pytest.raises(ConfigError, match="attention must be"):
        RNNConfig(9, 9, attention="luong")


@pytest.mark.parametrize("attention", [None, "bahdanau"])
def test_checkpoint_rebuilds_the_rnn(xp, host, tmp_path, attention):
    m = model(xp, attention, dtype="float32")
    m.save(tmp_path / "rnn.npz")
    back = load(tmp_path / "rnn.npz", backend=xp)
    assert isinstance(back, RNNSeq2Seq) and back.cfg == m.cfg
    close(host(back.forward(SRC, TGT)), host(m.forward(SRC, TGT)))


def test_trainer_builds_each_model(xp):
    from npformer.train.loop import TrainConfig, Trainer
    for name, kind in (("rnn", None), ("rnn-attention", "bahdanau")):
        t = Trainer(TrainConfig(model=name, d_model=8, steps=2, eval_every=2, eval_size=4, max_len=4), backend=xp)
        assert isinstance(t.model, RNNSeq2Seq) and t.model.cfg.attention == kind
        t.train_step()
    with pytest.raises(ConfigError, match="model must be one of"):
        TrainConfig(model="lstm")


def test_the_hard_attention_context_reaches_the_rnn(xp, host):
    """hard_attention(model) must switch the RNN's attention too, as greedy_decode(hard=True) does."""
    from npformer.layers.scores import hard_attention
    m = model(xp, "bahdanau", seed=2)
    direct = m.greedy_decode(SRC, max_len=7, hard=True)
    with hard_attention(m) as n:
        assert n == 1
        via_context = m.greedy_decode(SRC, max_len=7)
        A = host(m.weights)
    assert np.array_equal(direct, via_context)
    assert np.array_equal(A.max(axis=-1), np.ones(A.shape[:2]))
    assert m.attention.hard is False
