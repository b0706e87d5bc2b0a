"""The backend switch, and the strict backend that stands in for CuPy in CI."""

import numpy as np
import pytest

from npformer.backend import (BackendError, StrictError, backend_name, default_rng, get_backend, get_xp,
                              rng_state, set_rng_state, strict, to_device, to_numpy)


def test_numpy_is_the_default(monkeypatch):
    monkeypatch.delenv("NPFORMER_BACKEND", raising=False)
    assert get_backend() is np
    assert backend_name() == "numpy"


def test_environment_variable_selects(monkeypatch):
    monkeypatch.setenv("NPFORMER_BACKEND", "strict")
    assert get_backend() is strict
    assert get_backend("numpy") is np                           # an explicit name wins


def test_unknown_backend_is_one_clear_sentence():
    with pytest.raises(BackendError, match="unknown backend 'jax'"):
        get_backend("jax")


def test_cupy_without_cupy_says_what_to_install():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendError, match=r"pip install -e \"\.\[gpu\]\""):
        get_backend("cupy")


def test_round_trip_and_get_xp():
    a = np.arange(6.0).reshape(2, 3)
    s = to_device(a, "strict")
    assert get_xp(s) is strict and get_xp(a) is np
    back = to_numpy(s)
    assert isinstance(back, np.ndarray) and np.array_equal(back, a)
    back[0, 0] = 99                                              # a copy, as from a device
    assert to_numpy(s)[0, 0] == 0


@pytest.mark.parametrize("mix", [
    lambda s, h: s + h,
    lambda s, h: h * s,
    lambda s, h: np.exp(s) - h,
    lambda s, h: s @ h.T,
    lambda s, h: strict.concatenate([s, h]),
    lambda s, h: strict.where(s > 0, h, s),
    lambda s, h: s[np.array([0, 1])],
])
def test_strict_refuses_to_mix_host_and_device(mix):
    s = to_device(np.ones((2, 3)), "strict")
    with pytest.raises(StrictError):
        mix(s, np.ones((2, 3)))


@pytest.mark.parametrize("convert", [np.asarray, np.array, lambda s: np.sum(s), lambda s: np.concatenate([s, s]),
                                     lambda s: s.tolist()])
def test_strict_refuses_implicit_conversion_and_numpy_functions(convert):
    s = to_device(np.ones((2, 3)), "strict")
    with pytest.raises(StrictError):
        convert(s)


def test_strict_allows_what_cupy_allows():
    s = to_device(np.arange(6.0).reshape(2, 3), "strict")
    assert float(s.sum()) == 15.0                                # a scalar out of a 0-d array
    assert (s * 2.0 + np.float32(1)).shape == (2, 3)             # Python and NumPy scalars
    g = strict.zeros((4, 3))
    strict.add.at(g, to_device(np.array([0, 0, 2]), "strict"), strict.ones((3, 3)))
    assert to_numpy(g)[:, 0].tolist() == [2.0, 0.0, 1.0, 0.0]
    view = s.T
    view += 1                                                    # in place through a view, as CuPy
    assert to_numpy(s)[0, 0] == 1.0


def test_seeded_generators_repeat():
    for name in ("numpy", "strict"):
        xp = get_backend(name)
        a = to_numpy(default_rng(xp, 5).random((3,), dtype=np.float32))
        b = to_numpy(default_rng(xp, 5).random((3,), dtype=np.float32))
        assert a.dtype == np.float32 and np.array_equal(a, b)


def test_a_saved_generator_state_replays_the_same_draws(xp):
    gen = default_rng(xp, 7)
    gen.random((5,), dtype=np.float32)
    state = rng_state(gen)                                       # host bytes, as a checkpoint keeps them
    assert isinstance(state, np.ndarray) and state.dtype == np.uint8
    first = to_numpy(gen.random((4, 3), dtype=np.float32))
    other = default_rng(xp, 123)                                 # another seed, then the saved state
    assert set_rng_state(other, state)
    assert np.array_equal(to_numpy(other.random((4, 3), dtype=np.float32)), first)


def test_a_state_that_does_not_fit_is_refused_and_changes_nothing(xp):
    gen = default_rng(xp, 7)
    expected = to_numpy(default_rng(xp, 7).random((3,), dtype=np.float32))
    assert not set_rng_state(gen, np.frombuffer(b"not a generator state", dtype=np.uint8))
    assert np.array_equal(to_numpy(gen.random((3,), dtype=np.float32)), expected)


def test_the_strict_backend_counts_operations_and_not_views():
    from npformer.backend import OperationCount, StrictArray
    a = strict.ones((4, 6), dtype=np.float32)                   # made before counting: not counted
    with OperationCount(sites=True) as ops:
        b = a + 1.0                                              # 1 operator
        b *= a                                                   # 1 in-place operator
        s = strict.einsum("ij->i", b)                            # 1 call into the module
        total = b.sum()                                          # 1 method that computes; a 0-d array, as on CuPy
        v = a.reshape(2, 12)[:, 3:].T                            # views: free
        c = a.T.reshape(-1)                                      # a reshape that has to copy: 1
        g = a[to_device(np.array([0, 2]), strict)]               # a transfer (1) and a gather (1)
        x = float(total)                                         # a transfer back: 1
    assert ops.n == 8, ops.sites
    assert isinstance(total, StrictArray) and total.shape == () and x == 48.0
    assert v.shape == (9, 2) and c.shape == (24,) and g.shape == (2, 6) and s.shape == (4,)
    assert sum(ops.sites.values()) == 8
    assert {site.split(":")[0] for site in ops.sites} == {"tests/test_backend.py", "npformer/backend.py"}
