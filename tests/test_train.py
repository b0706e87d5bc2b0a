"""The training loop: files it writes, determinism, exact resume, early stop, NaN handling."""

import json
import os

import numpy as np
import pytest

from npformer.backend import to_numpy
from npformer.errors import ConfigError
from npformer.model.checkpoint import read
from npformer.train.loop import TrainConfig, Trainer, TrainingDiverged, fresh
from helpers import BIT_EXACT, same_run

TINY = dict(d_model=16, n_heads=2, d_ff=32, n_layers=1, max_len=5, batch_size=8, eval_size=16, eval_every=5)


def _cfg(**kw):
    return TrainConfig(**{**TINY, **kw})


def _metrics(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _without_clock(records):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


def _params(trainer):
    return {k: to_numpy(v) for k, v in trainer.model.parameters().items()}


def test_a_run_writes_checkpoint_and_metrics(tmp_path):
    out = str(tmp_path / "run")
    result = fresh(_cfg(steps=12), out).run(progress=False, write=lambda s: None)
    assert result.step == 12 and not result.reached
    assert [r["step"] for r in _metrics(out)] == [5, 10, 12]     # every 5 steps, and the last
    rec = _metrics(out)[-1]
    assert set(rec) == {"step", "train_loss", "lr", "exact_match", "token_accuracy", "wall_s"}
    assert 0.0 <= rec["exact_match"] <= 1.0 and rec["train_loss"] > 0
    header, params, extra = read(os.path.join(out, "model.npz"))
    assert header["meta"]["step"] == 12 and header["meta"]["train"]["task"] == "reverse"
    assert int(extra["adam/step"]) == 12
    replicas = header["meta"]["train"]["replicas"]              # one dropout generator each
    assert set(extra) == ({"adam/step"} | {f"dropout_rng/{k}" for k in range(replicas)}
                          | {f"adam/{w}/{k}" for w in "mv" for k in params})
    assert len(result.samples) == 3 and "->" in result.samples[0]


def test_same_seed_same_loss_curve_and_another_seed_differs(tmp_path):
    runs = {}
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        out = str(tmp_path / name)
        fresh(_cfg(steps=10, seed=seed), out).run(progress=False, write=lambda s: None)
        runs[name] = _without_clock(_metrics(out))
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]


def test_resume_after_an_interruption_gives_identical_parameters(tmp_path):
    cfg = _cfg(steps=17, dropout=0.1)
    straight = fresh(cfg, str(tmp_path / "straight"))
    straight.run(progress=False, write=lambda s: None)

    out = str(tmp_path / "stopped")

    def stop_at_13(trainer):                                     # checkpoint at 10, stop 3 steps later
        if trainer.step == 13:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        fresh(cfg, out).run(progress=False, on_step=stop_at_13, write=lambda s: None)
    assert read(os.path.join(out, "model.npz"))[0]["meta"]["step"] == 10

    resumed = Trainer.resume(out)
    assert resumed.step == 10 and resumed.resumed_exactly
    resumed.run(progress=False, write=lambda s: None)

    a, b = _params(straight), _params(resumed)
    assert a.keys() == b.keys()
    # The key bias bk has a gradient of exactly zero (softmax ignores a shift shared by a row of
    # scores), so what reaches it is rounding noise, which Adam scales up to steps of size lr. Where
    # runs agree only to rounding (CuPy), that noise differs between them; it changes no output.
    compared = [k for k in a if BIT_EXACT or not k.endswith(".bk")]
    for k in compared:
        same_run(a[k], b[k], f"{k} after resume")
    for which in ("m", "v"):
        for k in compared:
            same_run(getattr(straight.adam, which)[k], getattr(resumed.adam, which)[k], f"Adam's {which} of {k}")
    resumed_log, straight_log = _without_clock(_metrics(out)), _without_clock(_metrics(str(tmp_path / "straight")))
    assert resumed_log == (straight_log if BIT_EXACT else [pytest.approx(r, rel=1e-4) for r in straight_log])


def test_resume_can_extend_steps_but_not_change_the_recipe(tmp_path):
    out = str(tmp_path / "run")
    fresh(_cfg(steps=5), out).run(progress=False, write=lambda s: None)
    with pytest.raises(ConfigError, match="--lr"):
        Trainer.resume(out, lr=0.5)
    t = Trainer.resume(out, steps=7, lr=TrainConfig.lr)          # an unchanged value is fine
    assert t.run(progress=False, write=lambda s: None).step == 7


def test_a_new_run_does_not_replace_an_old_one_unless_forced(tmp_path):
    out = str(tmp_path / "run")
    fresh(_cfg(steps=5), out).run(progress=False, write=lambda s: None)
    with pytest.raises(ConfigError, match="--resume"):
        fresh(_cfg(steps=5), out)
    files = {name: open(os.path.join(out, name), "rb").read() for name in ("model.npz", "metrics.jsonl")}
    forced = fresh(_cfg(steps=5, seed=3), out, force=True)       # the old run stays until the first save
    assert all(open(os.path.join(out, name), "rb").read() == data for name, data in files.items())
    forced.run(progress=False, write=lambda s: None)
    assert read(os.path.join(out, "model.npz"))[0]["meta"]["train"]["seed"] == 3
    with open(os.path.join(out, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [5]   # the new run's lines only


def test_early_stop_when_the_target_is_reached(tmp_path):
    result = fresh(_cfg(steps=50, target=0.0), str(tmp_path / "run")).run(progress=False, write=lambda s: None)
    assert result.reached and result.step == 5                    # stops at the first evaluation


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    out = str(tmp_path / "run")
    ckpt = os.path.join(out, "model.npz")
    trainer = fresh(_cfg(steps=20), out)

    def poison(t):
        if t.step == 7:                                          # the step-5 checkpoint is on disk
            t.model.parameters()["generator.W"][...] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"step 8\b.*step 5"):
        trainer.run(progress=False, on_step=poison, write=lambda s: None)
    header, params, _ = read(ckpt)
    assert header["meta"]["step"] == 5
    assert all(np.isfinite(p).all() for p in params.values())


def test_a_non_finite_model_is_never_saved(tmp_path):
    out = str(tmp_path / "run")
    trainer = fresh(_cfg(steps=5), out)
    trainer.run(progress=False, write=lambda s: None)
    before = open(os.path.join(out, "model.npz"), "rb").read()
    trainer.model.parameters()["generator.b"][...] = float("inf")
    with pytest.raises(TrainingDiverged, match="finite"):
        trainer.save()
    assert open(os.path.join(out, "model.npz"), "rb").read() == before


def test_training_learns(tmp_path):
    cfg = _cfg(task="copy", steps=60, eval_every=60, n_symbols=4, max_len=3, lr=3e-3, warmup=10, dropout=0.0)
    trainer = fresh(cfg, str(tmp_path / "run"))
    first = trainer.train_step()[0]
    result = trainer.run(progress=False, write=lambda s: None)
    assert _metrics(str(tmp_path / "run"))[-1]["train_loss"] < 0.5 * first
    assert result.token_accuracy > 0.5


def test_bad_configurations():
    with pytest.raises(ConfigError, match="unknown task"):
        TrainConfig(task="rotate")
    with pytest.raises(ConfigError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ConfigError, match="held-out"):
        TrainConfig(seed=TrainConfig.eval_seed)
    with pytest.raises(ConfigError, match="divisible"):
        Trainer(TrainConfig(d_model=10, n_heads=4))
