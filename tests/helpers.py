"""Small helpers shared by the reference tests."""

import numpy as np


def rand(*shape, seed=0):
    """A float64 standard-normal array of the given shape, from a fixed seed."""
    return np.random.default_rng(seed).standard_normal(shape)


def close(a, b, tol=1e-12):
    """Assert a matches the reference b to `tol`, relative to b's largest entry (at least 1)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    err = np.abs(a - b).max(initial=0)
    assert err <= tol * max(1.0, np.abs(b).max(initial=0)), f"max abs difference {err:.3e}"
