"""Array backends: NumPy (default), CuPy (GPU) and "strict" (a CPU stand-in that behaves like CuPy).

This is the only module that imports CuPy. Math code never names a backend: it asks
`get_xp(*arrays)` for the module its inputs belong to, the CuPy convention
(`cupy.get_array_module`), so one body runs on every backend.

Nothing crosses between host and device implicitly. `to_device` and `to_numpy` are the two
doors, used at the input boundary (token ids, initial parameters, checkpoints) and the
output boundary (losses for logging, tokens for printing).

The strict backend (npformer/backend_strict.py) exists because CI has no GPU: its arrays
refuse to mix with NumPy arrays or to turn into them silently, as CuPy's do, and it counts
the array operations a step makes.
"""

import functools
import json
import os

import numpy as np

from npformer.backend_strict import OperationCount, StrictArray, StrictError, strict  # noqa: F401  (re-exported)
from npformer.backend_strict import from_host, to_host
from npformer.errors import NpformerError

BACKENDS = ("numpy", "cupy", "strict")
ENV_VAR = "NPFORMER_BACKEND"


class BackendError(NpformerError, RuntimeError):
    """A backend was asked for that cannot run here; the message says what to install or check."""

    exit_code = 1                  # the command was right; this machine cannot run it


# ----------------------------------------------------------------------------- selection

def backend_name(name=None):
    """The backend to use: `name` if given, else $NPFORMER_BACKEND, else "numpy"."""
    if name is None:
        name = os.environ.get(ENV_VAR) or "numpy"
    if not isinstance(name, str):
        return name_of(name)
    name = name.strip().lower()
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}.")
    return name


def get_backend(name=None):
    """The array module (`xp`) of a backend, by name; None means $NPFORMER_BACKEND or numpy."""
    if name is not None and not isinstance(name, str):
        return name  # already a module
    name = backend_name(name)
    if name == "numpy":
        return np
    if name == "strict":
        return strict
    return _cupy()


@functools.lru_cache(maxsize=None)
def _cupy():
    try:
        import cupy
    except ImportError:
        raise BackendError(
            "backend 'cupy' needs CuPy: install it with `pip install -e \".[gpu]\"` in the npformer "
            "checkout (`.[cuda12]` for a CUDA 12 driver).") from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # the CUDA runtime raises its own error types
        raise BackendError(f"backend 'cupy' found no usable GPU ({e}); check the NVIDIA driver "
                           "and CUDA_VISIBLE_DEVICES, or use --backend numpy.") from None
    if n == 0:
        raise BackendError("backend 'cupy' found no GPU; check CUDA_VISIBLE_DEVICES, "
                           "or use --backend numpy.")
    return cupy


def name_of(xp):
    """The name of an array module: "numpy", "cupy" or "strict"."""
    if xp is np:
        return "numpy"
    if xp is strict:
        return "strict"
    return "cupy"


def _from_cupy(obj):
    """True for an object whose type CuPy defines (an array, a generator), found without importing CuPy."""
    return type(obj).__module__.startswith("cupy")


def get_xp(*arrays):
    """The array module the arrays live on (CuPy's `get_array_module`)."""
    for a in arrays:
        if isinstance(a, StrictArray):
            return strict
        if _from_cupy(a):
            return _cupy()
    return np


# ----------------------------------------------------------------------------- BLAS threads

@functools.lru_cache(maxsize=None)
def _blas():
    """threadpoolctl's handle on the BLAS libraries loaded in this process (NumPy's OpenBLAS,
    MKL or BLIS), found once; imported here so that nothing else pays for it."""
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController().select(user_api="blas").lib_controllers


def blas_threads(n=None):
    """The number of threads NumPy's BLAS uses; with n, set it first. Where threadpoolctl finds
    no BLAS: the OMP/OPENBLAS/MKL environment variables, or the cores."""
    libs = _blas()
    if libs:
        if n is not None:
            for lib in libs:
                lib.set_num_threads(int(n))
        return int(libs[0].num_threads)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return os.cpu_count() or 1


# ----------------------------------------------------------------------------- transfers

def to_device(x, xp):
    """Host data (NumPy array, list, number) -> an array of backend `xp` (a module or a name)."""
    xp = get_backend(xp)
    if xp is np:
        return np.asarray(x)
    if xp is strict:
        return x if isinstance(x, StrictArray) else from_host(x)
    return xp.asarray(x)


def to_numpy(x):
    """Any backend's array -> a NumPy array on the host (a copy for device arrays)."""
    if isinstance(x, StrictArray):
        return to_host(x)
    if _from_cupy(x):
        return x.get()
    return np.asarray(x)


def is_array(x):
    """True for an array of any backend."""
    return isinstance(x, (np.ndarray, StrictArray)) or _from_cupy(x)


def synchronize(xp):
    """Wait for queued device work, so a host clock reads the time it really took."""
    if name_of(xp) == "cupy":
        xp.cuda.Device().synchronize()


def default_rng(xp, seed):
    """A seeded random generator whose draws are arrays of backend `xp`."""
    return xp.random.default_rng(seed)


def rng_state(gen):
    """Everything that restores a generator from `default_rng` exactly, as host bytes (uint8),
    for a checkpoint. NumPy and strict: the bit generator's state, as JSON. CuPy: the cuRAND
    per-thread states its bit generator keeps on the device; CuPy has no public accessor for
    them, so this copies its `_state` buffer."""
    bitgen = gen.bit_generator
    if _from_cupy(bitgen):
        return to_numpy(bitgen._state).view(np.uint8)
    return np.frombuffer(json.dumps(bitgen.state).encode(), dtype=np.uint8).copy()


def set_rng_state(gen, state):
    """Restore what `rng_state` saved, and return True; return False, changing nothing, where the
    state does not fit this generator (saved on another backend, or on a GPU with another number
    of cuRAND threads)."""
    bitgen = gen.bit_generator
    state = np.asarray(state, dtype=np.uint8)
    if _from_cupy(bitgen):
        if state.size != bitgen._state.size:
            return False
        bitgen._state[...] = to_device(state.view(np.int8), _cupy())
        return True
    try:
        bitgen.state = json.loads(state.tobytes().decode())
    except (ValueError, TypeError, KeyError):                    # not JSON, or another bit generator's
        return False
    return True
