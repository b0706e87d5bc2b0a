"""The pieces every multi-seed experiment page is built from: spreads over seeds, overlap of
ranges, and the score-spread measurement of the score-function experiment."""

import os

import numpy as np
import pytest

from helpers import same_run

from npformer.experiments import overlaps, show_spread, spread, words
from npformer.experiments.scores import groups, ranking, saturation, train_run

pytestmark = pytest.mark.skipif(os.environ.get("NPFORMER_BACKEND", "numpy") not in ("", "numpy"),
                                reason="the experiments run on NumPy")


def test_spread_and_its_text():
    assert spread([]) is None and show_spread([]) == "-"
    assert spread([3, 1, 2]) == (2, 1, 3)
    assert show_spread([1250, 1500, 1750]) == "1500 (1250-1750)"
    assert show_spread([0.5, 0.25], 3) == "0.375 (0.250-0.500)"


def test_names_as_a_phrase():
    assert words([]) == "" and words(["exact"]) == "exact"
    assert words(["a", "b"]) == "a and b" and words(["a", "b", "c"]) == "a, b and c"


def test_overlaps():
    assert overlaps((2, 1, 3), (5, 3, 6))                       # touching ranges overlap
    assert not overlaps((2, 1, 3), (5, 4, 6))
    assert not overlaps(None, (1, 1, 1))


def test_groups_of_overlapping_ranges_and_the_sentence_read_from_them():
    steps = {"a": (1300, 1200, 1400), "b": (1400, 1300, 1500), "c": (3500, 3400, 3600), "d": (3000, 2800, 3900)}
    summary = {k: {"steps": v} for k, v in steps.items()}
    assert groups(list(steps), summary) == [["a", "b"], ["c", "d"]]
    text = ranking(list(steps), summary)
    assert "2 groups that do not overlap: a, b (1,200 to 1,500 steps); then c, d (2,800 to 3,900 steps)" in text
    assert ranking(["a", "b"], summary).endswith("so these seeds do not rank them.")
    chain = {"x": {"steps": (2, 1, 3)}, "y": {"steps": (4, 3, 5)}, "z": {"steps": (6, 5, 7)}}  # x-y, y-z overlap; x-z not
    assert groups(["x", "y", "z"], chain) is None
    assert ranking(["x", "y", "z"], chain) == ("The ranges of steps to 99% are apart only for x and z; "
                                               "every other pair overlaps.")


def test_saturation_scales_the_spread_by_sqrt_dk():
    rows = saturation(seeds=[0], d_ks=(8, 32), n=8)
    std = {(d, s): v for d, _, s, v, _, _ in rows}
    for d in (8, 32):
        np.testing.assert_allclose(std[d, "scaled_dot"], std[d, "dot"] / np.sqrt(d), rtol=1e-5)
    peak = {(d, s): p for d, _, s, _, p, _ in rows}
    assert peak[32, "dot"] > peak[32, "scaled_dot"]             # unscaled scores give peakier weights


RUN = dict(task="reverse", max_len=4, d_model=16, n_heads=2, d_ff=32, n_layers=1, batch_size=8, eval_size=10,
           eval_every=2, replicas=2, warmup=1, lr=1e-2, target=1.0)


def test_a_larger_budget_continues_a_finished_run_exactly(tmp_path):
    from npformer.model import load
    from npformer.train.loop import CHECKPOINT, METRICS

    def rows():
        return (tmp_path / "a" / METRICS).read_text().splitlines()
    short = train_run(str(tmp_path / "a"), steps=4, **RUN)
    first = rows()
    assert short["step"] == 4 and len(first) == 2
    longer = train_run(str(tmp_path / "a"), steps=8, **RUN)     # continues from step 4
    assert rows()[:2] == first                                  # steps 2 and 4 kept, wall times and all
    once = train_run(str(tmp_path / "b"), steps=8, **RUN)       # one run with the larger budget
    assert [s for s, _ in longer["curve"]] == [2, 4, 6, 8] and longer["curve"] == once["curve"]
    a, b = load(str(tmp_path / "a" / CHECKPOINT)), load(str(tmp_path / "b" / CHECKPOINT))
    for name, p in a.parameters().items():
        same_run(p, b.parameters()[name], name)
    again = train_run(str(tmp_path / "a"), steps=8, **RUN)      # finished: read, not redone
    assert again["curve"] == longer["curve"] and again["wall_s"] == longer["wall_s"]
    saved = rows()
    for other in ({**RUN, "steps": 8, "lr": 5e-3}, {**RUN, "steps": 6}):   # other settings; past the budget
        with pytest.raises(SystemExit, match="holds a run of other settings than this experiment's"):
            train_run(str(tmp_path / "a"), **other)
    assert rows() == saved                                     # nothing overwritten
    (tmp_path / "a" / CHECKPOINT).unlink()
    with pytest.raises(SystemExit, match="no model.npz to resume from"):
        train_run(str(tmp_path / "a"), steps=8, **RUN)
    assert rows() == saved
