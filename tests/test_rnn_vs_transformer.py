"""The sentences of the RNN-vs-Transformer page are read from the seeds' ranges: a model is
called ahead at a length only where its lowest seed is above the other's highest."""

import os

import pytest

from npformer.experiments.rnn_vs_transformer import ahead, findings, plateaued, step_times

pytestmark = pytest.mark.skipif(os.environ.get("NPFORMER_BACKEND", "numpy") not in ("", "numpy"),
                                reason="the experiments run on NumPy")

LENGTHS = [4, 16, 64]


def summary(tf_uniform, att_uniform, rnn_uniform, tf_long=None, att_long=None, rnn_long=None):
    cells = {("transformer", "uniform"): tf_uniform, ("rnn-attention", "uniform"): att_uniform,
             ("rnn", "uniform"): rnn_uniform, ("transformer", "long"): tf_long,
             ("rnn-attention", "long"): att_long, ("rnn", "long"): rnn_long}
    return {k: dict(zip(LENGTHS, v)) for k, v in cells.items() if v is not None}


def test_ahead_tells_apart_only_ranges_that_do_not_overlap():
    a = {4: (0.98, 0.97, 0.99), 16: (0.9, 0.8, 0.95), 64: (0.3, 0.2, 0.5)}
    b = {4: (0.7, 0.6, 0.8), 16: (0.9, 0.85, 0.92), 64: (0.6, 0.55, 0.7)}
    assert ahead(a, b, LENGTHS) == ([4], [64], [16])
    assert ahead(a, {4: None, 16: None, 64: None}, LENGTHS) == ([], [], [])


def test_findings_read_the_comparisons_from_the_ranges():
    s = summary(tf_uniform=[(0.98, 0.97, 0.99), (0.97, 0.96, 0.99), (0.35, 0.26, 0.5)],
                att_uniform=[(0.7, 0.6, 0.8), (0.9, 0.8, 0.97), (0.05, 0.0, 0.1)],
                rnn_uniform=[(0.5, 0.4, 0.6), (0.0, 0.0, 0.01), (0.0, 0.0, 0.0)],
                tf_long=[(0.98, 0.97, 0.99), (0.97, 0.96, 0.99), (0.8, 0.7, 0.9)],
                att_long=[(0.7, 0.6, 0.8), (0.9, 0.8, 0.97), (0.2, 0.1, 0.3)],
                rnn_long=[(0.4, 0.3, 0.5), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)])
    models = ["transformer", "rnn-attention", "rnn"]
    numbers, shows = findings(s, models, ["uniform", "long"], LENGTHS)
    assert numbers[0] == ("At L=64, trained on lengths drawn uniformly: Transformer 0.350 (0.260-0.500), "
                          "GRU + Bahdanau attention 0.050 (0.000-0.100), GRU, one context vector 0.000 (0.000-0.000).")
    text = " ".join(shows)
    assert ("Lengths drawn uniformly: the Transformer's lowest seed is above the GRU + attention's highest at "
            "L=4 and 64; the Transformer's and the GRU + attention's ranges overlap at L=16.") in text
    assert "exact match at L=64 is 0.800 against 0.350: higher, and the seeds' ranges do not overlap" in text
    assert ("is below 0.05 in every seed from L=16 on; at L=16 the lowest seed of each attention model is above "
            "its highest.") in text


def test_findings_say_overlap_and_never_claim_a_collapse_that_recovers():
    s = summary(tf_uniform=[(0.9, 0.8, 1.0), (0.9, 0.8, 1.0), (0.4, 0.2, 0.6)],
                att_uniform=[(0.9, 0.85, 0.95), (0.9, 0.85, 0.95), (0.5, 0.3, 0.7)],
                rnn_uniform=[(0.01, 0.0, 0.02), (0.3, 0.2, 0.4), (0.0, 0.0, 0.0)],
                tf_long=[(0.9, 0.8, 1.0), (0.9, 0.8, 1.0), (0.5, 0.3, 0.7)],
                att_long=None, rnn_long=None)
    numbers, shows = findings(s, ["transformer", "rnn-attention", "rnn"], ["uniform"], LENGTHS)
    assert shows == ["Lengths drawn uniformly: the Transformer's and the GRU + attention's ranges overlap at L=4, 16 and 64.",
                     "The GRU with one context vector, whose decoder sees the source only through one vector, "
                     "is below 0.05 in every seed from L=64 on; at L=64 the lowest seed of each attention model "
                     "is above its highest."]
    s["rnn-attention", "long"] = s["rnn-attention", "uniform"]
    s["rnn", "long"] = s["rnn", "uniform"]
    _, shows = findings(s, ["transformer", "rnn-attention", "rnn"], ["uniform", "long"], LENGTHS)
    assert "is 0.500 against 0.400: not clearly different (the ranges overlap)" in " ".join(shows)


def test_step_times_fastest_first_with_ratios():
    timing = {"transformer": {64: 0.010}, "rnn": {64: 0.030}, "rnn-attention": {64: 0.055}}
    assert step_times(timing, 64) == ("A training step at L=64 on this CPU: Transformer 10 ms, "
                                      "GRU, one context vector 30 ms (3.0x), GRU + Bahdanau attention 55 ms (5.5x).")


def test_plateaued_compares_the_last_evaluations_with_the_best_before():
    rising = [(i, e) for i, e in enumerate([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])]
    flat = [(i, e) for i, e in enumerate([0.1, 0.5, 0.8, 0.9, 0.9, 0.905, 0.89, 0.9])]
    assert not plateaued(rising) and plateaued(flat) and not plateaued(flat[:4])
