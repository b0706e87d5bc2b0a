"""The pieces every multi-seed experiment page is built from: spreads over seeds, overlap of
ranges, and the score-spread measurement of the score-function experiment."""

import os

import numpy as np
import pytest

from npformer.experiments import show_spread, spread, words
from npformer.experiments.scores import groups, overlaps, ranking, saturation

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
