"""The g2p results command (npformer/experiments/g2p.py) on tiny runs and a small dictionary: it
trains every run of the table, writes the section docs/g2p.md includes, reads finished runs
instead of training them again, resumes a stopped one, and refuses a folder of other settings."""

import json
import os

import pytest

from npformer.experiments import g2p
from npformer.train.loop import fresh
from test_g2p import _as_file, _lexicon

RECIPE = json.dumps(dict(d_model=16, n_heads=2, d_ff=32, n_layers=1, batch_size=16, warmup=5, lr=3e-3,
                         steps=12, eval_every=6))


@pytest.fixture()
def lexicon_path(tmp_path):
    path = tmp_path / "lex.dict"
    path.write_text(_as_file(_lexicon(120)))
    return str(path)


def _argv(tmp_path, lexicon_path, *more):
    return ["--data", lexicon_path, "--recipe", RECIPE, "--seeds", "0,1", "--budget", "0.02",
            "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "docs"), *more]


def test_every_run_is_trained_then_read_and_the_section_shows_them(tmp_path, lexicon_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    assert g2p.main(_argv(tmp_path, lexicon_path)) == 0
    runs = tmp_path / "runs"
    assert sorted(os.listdir(runs)) == ["budget0.02_seed0", "rnn-attention_seed0", "torch-budget0.02_seed0",
                                        "transformer_seed0", "transformer_seed1"]
    text = (tmp_path / "docs" / "g2p_results.md").read_text()
    for label in ("default recipe, seed 0", "default recipe, seed 1", "mean (min-max) over 2 seeds",
                  "GRU + Bahdanau attention", "`--time-budget 0.02`", "PyTorch reference"):
        assert label in text, label
    assert "Not yet measured" not in text
    gru = next(line for line in text.splitlines() if "one seed of the GRU with attention" in line)
    assert "x fewer)" in gru and ("still falling" in gru or "lowest dev WER came at step" in gru)
    raw = json.loads((tmp_path / "docs" / "g2p_results.json").read_text())
    with open(runs / "transformer_seed1" / "test.json") as f:
        assert raw["transformer_seed1"]["beam"] == json.load(f)["beam"]
    assert raw["rnn-attention_seed0"]["beam"] is None and raw["transformer_seed0"]["steps"] == 12

    stamp = os.path.getmtime(runs / "transformer_seed0" / "model.npz")
    assert g2p.main(_argv(tmp_path, lexicon_path)) == 0           # finished runs are read, not trained again
    assert os.path.getmtime(runs / "transformer_seed0" / "model.npz") == stamp


class _Stop(Exception):
    pass


def test_report_names_the_missing_runs_and_a_stopped_run_resumes(tmp_path, lexicon_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "runs" / "transformer_seed0"
    cfg = g2p.config({"seed": 0}, {"data": lexicon_path, **json.loads(RECIPE)})

    def stop(trainer):
        if trainer.step == 8:                                      # after the checkpoint of step 6
            raise _Stop

    with pytest.raises(_Stop):
        fresh(cfg, str(run)).run(progress=False, on_step=stop, write=lambda line: None)
    assert g2p.main(_argv(tmp_path, lexicon_path, "--report")) == 0
    text = (tmp_path / "docs" / "g2p_results.md").read_text()
    assert "Not yet measured" in text and "`transformer_seed0`" in text and "`rnn-attention_seed0`" in text

    assert g2p.main(_argv(tmp_path, lexicon_path, "--run", "transformer_seed0")) == 0
    with open(run / "metrics.jsonl") as f:
        assert [json.loads(line)["step"] for line in f] == [6, 12]  # resumed at 6, not started over
    assert (run / "test.json").exists()

    other = _argv(tmp_path, lexicon_path, "--run", "transformer_seed0")
    other[other.index(RECIPE)] = json.dumps({**json.loads(RECIPE), "d_model": 8})
    with pytest.raises(SystemExit, match="other settings"):
        g2p.main(other)


def test_a_checkpoint_no_training_run_wrote_stops_with_one_sentence_and_stays(tmp_path, lexicon_path):
    from npformer.model import Transformer, TransformerConfig
    from npformer.model.checkpoint import save
    run = tmp_path / "runs" / "transformer_seed0"
    run.mkdir(parents=True)
    save(Transformer(TransformerConfig(11, 9, d_model=16), seed=0), str(run / "model.npz"))  # weights only
    argv = _argv(tmp_path, lexicon_path, "--run", "transformer_seed0")
    for expected in ("holds a run of other settings than this experiment's", "Move .* away, or choose another --runs"):
        before = (run / "model.npz").read_bytes()
        with pytest.raises(SystemExit, match=expected) as stop:
            g2p.main(argv)
        assert "\n" not in str(stop.value) and (run / "model.npz").read_bytes() == before
        (run / "model.npz").write_bytes(before[: len(before) // 2])     # then a truncated checkpoint


def test_a_run_that_diverges_stops_with_one_sentence(tmp_path, lexicon_path):
    argv = _argv(tmp_path, lexicon_path, "--run", "transformer_seed0")
    argv[argv.index(RECIPE)] = json.dumps({**json.loads(RECIPE), "lr": 1e3, "warmup": 1})
    said = r"transformer_seed0: (the loss became|training (diverged|ended at step \d+ diverging))"
    with pytest.raises(SystemExit, match=said) as stop:
        g2p.main(argv)
    assert "\n" not in str(stop.value)
