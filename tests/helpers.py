"""Small helpers shared by the reference tests."""

import numpy as np

from npformer.backend import backend_name, to_numpy

# CuPy's add.at (the embedding's scatter-add) adds with atomics in no fixed order, so on a GPU two
# runs of the same steps agree to rounding; on NumPy and strict they agree bit for bit.
BIT_EXACT = backend_name() != "cupy"


def rand(*shape, seed=0):
    """A float64 standard-normal array of the given shape, from a fixed seed."""
    return np.random.default_rng(seed).standard_normal(shape)


def close(a, b, tol=1e-12):
    """Assert a matches the reference b to `tol`, relative to b's largest entry (at least 1)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    err = np.abs(a - b).max(initial=0)
    assert err <= tol * max(1.0, np.abs(b).max(initial=0)), f"max abs difference {err:.3e}"


def same_run(a, b, what=""):
    """Assert two arrays from two runs of the same steps are the same: bit for bit where the backend
    is deterministic, to rounding on CuPy."""
    a, b = to_numpy(a), to_numpy(b)
    if BIT_EXACT:
        assert np.array_equal(a, b), f"{what} differs"
    else:
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7, err_msg=what)


def one_line_error(capsys, argv, *needles, code=2):
    """Run the command line argv; expect exit status `code` (2: bad usage, 1: a failure while
    running) and exactly one line on stderr, without a traceback, holding every needle."""
    from npformer.cli import main
    try:
        rc = main(argv)
    except SystemExit as e:                                      # argparse's usage errors
        rc = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == code and len(lines) == 1 and "Traceback" not in err, (rc, err)
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
