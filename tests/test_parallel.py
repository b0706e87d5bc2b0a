"""Data parallelism (train/parallel.py): a batch split among replicas gives the whole batch's loss
and gradients; replicas share the model's parameters and keep their own gradients and masks."""

import numpy as np
import pytest

import npformer as nf
from npformer.backend import blas_threads, to_numpy
from npformer.loss import cross_entropy
from npformer.model.rnn import RNNSeq2Seq
from npformer.train.parallel import DataParallel, default_replicas

from helpers import BIT_EXACT, same_run

rng = np.random.default_rng(0)
SRC = rng.integers(3, 11, (5, 7))
SRC[1, 4:] = 0                                                   # padding in some rows
SRC[3, 2:] = 0
TGT_IN = np.concatenate([np.ones((5, 1), int), SRC[:, ::-1]], axis=1)
TGT_OUT = np.concatenate([SRC[:, ::-1], np.full((5, 1), 2)], axis=1)
TGT_OUT[3, :3] = 0
TRANSFORMER = dict(src_vocab=11, tgt_vocab=11, d_model=8, n_heads=2, d_ff=16, n_layers=2, max_len=10)


def _whole_batch(model, smoothing):
    """The reference: one forward and one backward over the whole batch."""
    model.zero_grad()
    loss, dlogits = cross_entropy(model.forward(SRC, TGT_IN, training=True), TGT_OUT, label_smoothing=smoothing)
    model.backward(dlogits)
    return loss, {k: to_numpy(g).copy() for k, g in model.gradients().items()}


@pytest.mark.parametrize("n", [2, 3, 5, 8])
@pytest.mark.parametrize("kind", ["post-norm", "pre-norm, learned positions, tied embeddings", "rnn-attention"])
def test_the_parts_add_up_to_the_whole_batch(xp, n, kind):
    if kind == "rnn-attention":
        make = lambda: RNNSeq2Seq(dict(src_vocab=11, tgt_vocab=11, d_embed=6, d_hidden=8, attention="bahdanau",
                                       d_attn=5), seed=1, dtype="float64", backend=xp)
    else:
        extra = dict(norm="pre", positional="learned", tie_embeddings=True) if kind.startswith("pre") else {}
        make = lambda: nf.Transformer({**TRANSFORMER, **extra, "dropout": 0.0}, seed=1, dtype="float64", backend=xp)
    expected_loss, expected = _whole_batch(make(), smoothing=0.1)
    model = make()
    loss = DataParallel(model, n).step(SRC, TGT_IN, TGT_OUT, label_smoothing=0.1)   # 8 > B: five parts of one row
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for k, g in model.gradients().items():
        np.testing.assert_allclose(to_numpy(g), expected[k], rtol=1e-10, atol=1e-13, err_msg=k)


def test_replicas_share_the_parameters_and_keep_their_own_gradients(xp):
    model = nf.Transformer({**TRANSFORMER, "dropout": 0.0, "tie_embeddings": True}, seed=2, dtype="float64",
                           backend=xp)
    dp = DataParallel(model, 2)
    replica = dp.replicas[1]
    assert replica.arena.params is model.arena.params and replica.arena.grads is not model.arena.grads
    model.arena.params[...] = model.arena.params + 1.0           # seen through every named view of the replica
    model.arena.grads.fill(2.0)
    for (name, p), (_, q) in zip(model.parameters().items(), replica.parameters().items()):
        assert np.array_equal(to_numpy(p), to_numpy(q)), name
    assert not any(to_numpy(g).any() for g in replica.gradients().values())   # its own, still zero
    model.arena.params[...] = model.arena.params - 1.0
    # an update of the model in place (as Adam makes it) is what every replica computes with next
    dp.step(SRC, TGT_IN, TGT_OUT)
    for p, g in zip(model.parameters().values(), model.gradients().values()):
        p -= 0.1 * g
    loss = dp.step(SRC, TGT_IN, TGT_OUT)
    assert loss == pytest.approx(_whole_batch(model, 0.0)[0], rel=1e-12)


def test_each_replica_draws_its_own_masks_and_a_step_repeats_exactly(xp):
    def run():
        model = nf.Transformer({**TRANSFORMER, "dropout": 0.3}, seed=3, backend=xp)
        dp = DataParallel(model, 2)
        losses = [dp.step(SRC, TGT_IN, TGT_OUT) for _ in range(3)]
        return dp, losses, {k: to_numpy(g) for k, g in model.gradients().items()}
    dp, losses, grads = run()
    _, again, grads_again = run()
    assert losses == (again if BIT_EXACT else pytest.approx(again, rel=1e-5))   # threads never change the sums
    for k in grads:
        same_run(grads[k], grads_again[k], k)
    first, second = (to_numpy(r.src_drop.cache) for r in dp.replicas)
    assert first.shape[1:] == second.shape[1:] and not np.array_equal(first[:2], second[:2])


def test_blas_threads_are_given_back_after_a_step():
    before = blas_threads()
    model = nf.Transformer({**TRANSFORMER, "dropout": 0.0}, seed=4)
    DataParallel(model, 2).step(SRC, TGT_IN, TGT_OUT)
    assert blas_threads() == before


def test_a_run_fixes_its_number_of_replicas_when_it_starts(xp, tmp_path):
    from npformer.backend import backend_name
    from npformer.model.checkpoint import read
    from npformer.train.loop import TrainConfig, fresh
    expected = 1 if backend_name() == "cupy" else 2              # a second thread helps a CPU only
    cfg = TrainConfig(d_model=8, n_heads=2, d_ff=16, n_layers=1, max_len=4, batch_size=4, steps=1, eval_size=4)
    assert cfg.replicas is None and default_replicas(xp) == expected
    trainer = fresh(cfg, str(tmp_path / "run"), backend=xp)
    assert trainer.cfg.replicas == expected and len(trainer.parallel.replicas) == expected
    trainer.run(progress=False, write=lambda s: None)
    assert read(tmp_path / "run" / "model.npz")[0]["meta"]["train"]["replicas"] == expected


def test_no_replicas_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        DataParallel(nf.Transformer(TRANSFORMER), 0)


def test_adam_shared_among_the_threads_is_the_same_update(xp):
    from npformer.backend import to_device
    from npformer.train.optim import Adam
    models = [nf.Transformer({**TRANSFORMER, "dropout": 0.0}, seed=5, backend=xp) for _ in range(2)]
    adams = [Adam(m.arena) for m in models]
    adams[1].block_size = 1000                                   # blocks that cross the parts' edges too
    dp = DataParallel(models[1], 2)
    size = models[0].arena.size
    grads = to_device(np.random.default_rng(6).standard_normal(size).astype(np.float32), xp)
    for step in range(3):
        for m in models:
            m.arena.grads[...] = grads
        adams[0].step(1e-2)
        adams[1].step(1e-2, dp)                                  # each thread a part of the arena
    assert [(p.start, p.stop) for p in dp.parts] == [(0, size // 2), (size // 2, size)]
    for k, p in models[0].parameters().items():
        assert np.array_equal(to_numpy(p), to_numpy(models[1].parameters()[k])), k
