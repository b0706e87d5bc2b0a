"""The Table 1 experiment: its operation counter against the formulas read off the shapes, the
n = d crossover, sequential steps and path lengths, and the command end to end on tiny sizes."""

import os

import pytest

from npformer.experiments import complexity as cx

pytestmark = pytest.mark.skipif(os.environ.get("NPFORMER_BACKEND", "numpy") not in ("", "numpy"),
                                reason="the experiment measures the NumPy layers")


@pytest.mark.parametrize("kind", ["attention", "gru"])
@pytest.mark.parametrize("n,d", [(4, 8), (12, 8), (8, 24)])
def test_forward_count_is_the_formula(kind, n, d):
    assert cx.count_forward_flops(kind, n, d) == cx.predicted_forward_flops(kind, n, d)


def test_forward_counts_cross_where_n_equals_d():
    d = 16
    ratio = {n: cx.count_forward_flops("attention", n, d) / cx.count_forward_flops("gru", n, d)
             for n in (8, 16, 32)}
    assert ratio[8] < 1 and ratio[16] == 1 and ratio[32] > 1, ratio


def test_counter_sees_the_backward_too():
    flops, steps = cx.count_flops("gru", 6, 8)
    assert steps == 6
    assert flops > 2 * cx.predicted_forward_flops("gru", 6, 8)   # backward does about twice the forward
    assert cx.count_flops("attention", 6, 8)[1] == 1


def test_path_lengths():
    assert [cx.path_length("attention", n) for n in (2, 5, 9)] == [1, 1, 1]
    assert [cx.path_length("gru", n) for n in (2, 5, 9)] == [2, 5, 9]


def test_quick_command_writes_its_page(tmp_path):
    cx.main(["--quick", "--out", str(tmp_path)])
    page = (tmp_path / "complexity.md").read_text()
    assert "agree exactly" in page and "--quick run" in page
    assert (tmp_path / "complexity.png").stat().st_size > 10_000
    assert (tmp_path / "complexity.json").exists()
