"""The toy tasks: the token scheme, padding, seeded sampling, and the two metrics."""

import numpy as np
import pytest

from npformer.errors import ConfigError, InputError
from npformer.train.tasks import BOS, EOS, PAD, Task, heldout, make_batch, score, strip


def test_token_scheme_and_padding_reverse():
    task = Task("reverse")
    b = make_batch(task, [np.array([3, 9, 4]), np.array([7])])
    np.testing.assert_array_equal(b.src, [[3, 9, 4], [7, PAD, PAD]])
    np.testing.assert_array_equal(b.tgt_in, [[BOS, 4, 9, 3], [BOS, 7, PAD, PAD]])
    np.testing.assert_array_equal(b.tgt_out, [[4, 9, 3, EOS], [7, EOS, PAD, PAD]])
    assert b.n_target_tokens == 6
    assert (PAD, BOS, EOS) == (0, 1, 2) and task.vocab == 13


@pytest.mark.parametrize("name, expected", [("copy", [5, 3, 12, 5]), ("reverse", [5, 12, 3, 5]),
                                            ("sort", [3, 5, 5, 12])])
def test_targets(name, expected):
    assert Task(name).target(np.array([5, 3, 12, 5])).tolist() == expected


def test_sampling_is_seeded_in_range_and_prefix_stable():
    task = Task("copy", n_symbols=5, min_len=2, max_len=6)
    a = task.sample(np.random.default_rng(7), 200)
    b = task.sample(np.random.default_rng(7), 50)
    assert all((x == y).all() for x, y in zip(a, b))             # the first 50 do not depend on n
    lengths = [len(s) for s in a]
    assert min(lengths) == 2 and max(lengths) == 6
    symbols = np.concatenate(a)
    assert symbols.min() == 3 and symbols.max() == 3 + 5 - 1


def test_heldout_is_fixed_and_not_the_training_draw():
    task = Task("reverse")
    first, again = heldout(task, 100), heldout(task, 100)
    assert all((x == y).all() for x, y in zip(first, again))
    train = task.sample(np.random.default_rng(0), 100)
    assert sum(len(x) == len(y) and (x == y).all() for x, y in zip(first, train)) < 10


def test_score_token_accuracy_and_exact_match():
    expected = np.array([[4, 9, 3, EOS], [7, EOS, PAD, PAD], [5, 5, EOS, PAD]])
    produced = np.array([[4, 9, 3, EOS],                         # right
                         [7, 7, EOS, PAD],                       # EOS late: 1 of 2 tokens right
                         [5, 5, 5, 5]])                          # no EOS: 2 of 3 right
    acc, exact = score(expected, produced)
    assert exact == pytest.approx(1 / 3)
    assert acc == pytest.approx((4 + 1 + 2) / 9)
    acc, exact = score(expected, produced[:, :2])                # a short decode counts as wrong, not an error
    assert exact == 0.0 and acc == pytest.approx((2 + 1 + 2) / 9)


def test_strip_stops_at_eos():
    assert strip([4, 9, EOS, PAD]) == [4, 9]
    assert strip([4, 9, 3]) == [4, 9, 3]


def test_bad_tasks_and_sources():
    with pytest.raises(ConfigError, match="unknown task"):
        Task("rotate")
    with pytest.raises(ConfigError, match="min_len"):
        Task("copy", min_len=5, max_len=4)
    with pytest.raises(InputError, match="PAD, BOS, EOS"):
        Task("copy").check_source(np.array([3, 1, 4]))
    with pytest.raises(InputError, match="3..12"):
        Task("copy").check_source(np.array([3, 13]))


def test_long_lengths_put_half_of_the_sources_at_the_longest_length():
    uniform = Task("reverse", 10, 1, 64).sample(np.random.default_rng(0), 4000)
    long = Task("reverse", 10, 1, 64, lengths="long").sample(np.random.default_rng(0), 4000)
    at_max = lambda seqs: np.mean([len(s) == 64 for s in seqs])
    assert at_max(uniform) < 0.03 and 0.45 < at_max(long) < 0.56
    assert min(len(s) for s in long) < 8                         # short sources are still drawn
    with pytest.raises(ConfigError, match="lengths must be one of"):
        Task(lengths="longest")
