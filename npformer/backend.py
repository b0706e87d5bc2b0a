"""Array backends: NumPy (default), CuPy (GPU) and "strict" (a CPU stand-in that behaves like CuPy).

This is the only module that imports CuPy. Math code never names a backend: it asks
`get_xp(*arrays)` for the module its inputs belong to, the CuPy convention
(`cupy.get_array_module`), so one body runs on every backend.

Nothing crosses between host and device implicitly. `to_device` and `to_numpy` are the two
doors, used at the input boundary (token ids, initial parameters, checkpoints) and the
output boundary (losses for logging, tokens for printing).

The strict backend exists because CI has no GPU. Its arrays wrap NumPy arrays but refuse
everything a CuPy array refuses: arithmetic with a plain NumPy array, NumPy functions called
on them, and silent conversion to a host array. A suite that passes under
`NPFORMER_BACKEND=strict` therefore keeps host and device apart the way CuPy needs.
"""

import ctypes
import functools
import json
import os
import types

import numpy as np

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
def _openblas():
    """The (get, set) thread-count functions of the OpenBLAS NumPy loaded (found in this
    process's memory map, the way threadpoolctl finds it), or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    return get, put
    return None


def blas_threads(n=None):
    """The number of threads NumPy's BLAS uses; with n, set it first (OpenBLAS only). Elsewhere:
    the OMP/OPENBLAS/MKL environment variables, or the cores."""
    lib = _openblas()
    if lib is not None:
        get, put = lib
        if n is not None:
            put(int(n))
        return int(get())
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
        return x if isinstance(x, StrictArray) else StrictArray(np.array(x))
    return xp.asarray(x)


def to_numpy(x):
    """Any backend's array -> a NumPy array on the host (a copy for device arrays)."""
    if isinstance(x, StrictArray):
        return x._a.copy()
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
    if xp is strict:
        return _StrictGenerator(np.random.default_rng(seed))
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


# ----------------------------------------------------------------------------- the strict backend

class StrictError(TypeError):
    """Host and device data met without an explicit transfer."""


def _unwrap(x, what):
    """StrictArray -> its NumPy array; a host ndarray (not a 0-d one) raises, like CuPy does."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, np.ndarray) and x.ndim > 0:
        raise StrictError(f"{what} mixes a device array with a host NumPy array of shape {x.shape}; "
                          "move it with npformer.backend.to_device first.")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, what) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, what) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return StrictArray(x)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _binary(ufunc, reflected=False):
    def op(self, other):
        other = _unwrap(other, f"operator {ufunc.__name__}")
        return StrictArray(ufunc(other, self._a) if reflected else ufunc(self._a, other))
    return op


def _inplace(ufunc):
    def op(self, other):
        ufunc(self._a, _unwrap(other, f"operator {ufunc.__name__}="), out=self._a)
        return self
    return op


class StrictArray:
    """A NumPy array that acts toward NumPy as a CuPy array does: no implicit host conversion."""

    __slots__ = ("_a",)
    __array_priority__ = 1000

    def __init__(self, a):
        self._a = a

    # the refusals
    def __array__(self, *args, **kwargs):
        raise StrictError("implicit conversion of a device array to a NumPy array; "
                          "use npformer.backend.to_numpy.")

    def __array_function__(self, func, types, args, kwargs):
        raise StrictError(f"numpy.{func.__name__} called on a device array; "
                          "use the array module from npformer.backend.get_xp.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = _unwrap(inputs, f"numpy.{ufunc.__name__}")
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"], f"numpy.{ufunc.__name__}")
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def tolist(self):
        raise StrictError("tolist() on a device array; use npformer.backend.to_numpy first.")

    # what CuPy allows: scalars out of 0-d or 1-element arrays, shape queries, views
    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __bool__(self):
        return bool(self._a)

    def __index__(self):
        return self._a.__index__()

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key, "indexing")])

    def __setitem__(self, key, value):
        self._a[_unwrap(key, "indexing")] = _unwrap(value, "assignment")

    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__ and friends would let NumPy convert silently
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            def method(*args, **kwargs):
                return _wrap(attr(*_unwrap(args, f".{name}()"), **_unwrap(kwargs, f".{name}()")))
            return method
        return _wrap(attr)

    @property
    def T(self):
        return StrictArray(self._a.T)

    @property
    def shape(self):
        return self._a.shape

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self):
        return self._a.ndim

    @property
    def size(self):
        return self._a.size

    def __neg__(self):
        return StrictArray(-self._a)

    def __abs__(self):
        return StrictArray(abs(self._a))

    def __invert__(self):
        return StrictArray(~self._a)

    __add__, __radd__, __iadd__ = _binary(np.add), _binary(np.add, True), _inplace(np.add)
    __sub__, __rsub__, __isub__ = _binary(np.subtract), _binary(np.subtract, True), _inplace(np.subtract)
    __mul__, __rmul__, __imul__ = _binary(np.multiply), _binary(np.multiply, True), _inplace(np.multiply)
    __truediv__, __rtruediv__ = _binary(np.true_divide), _binary(np.true_divide, True)
    __itruediv__ = _inplace(np.true_divide)
    __floordiv__, __mod__ = _binary(np.floor_divide), _binary(np.mod)
    __pow__, __rpow__ = _binary(np.power), _binary(np.power, True)
    __matmul__, __rmatmul__ = _binary(np.matmul), _binary(np.matmul, True)
    __and__, __or__, __xor__ = _binary(np.logical_and), _binary(np.logical_or), _binary(np.logical_xor)
    __rand__, __ror__ = _binary(np.logical_and, True), _binary(np.logical_or, True)
    __iand__, __ior__ = _inplace(np.logical_and), _inplace(np.logical_or)
    __lt__, __le__ = _binary(np.less), _binary(np.less_equal)
    __gt__, __ge__ = _binary(np.greater), _binary(np.greater_equal)
    __eq__, __ne__ = _binary(np.equal), _binary(np.not_equal)
    __hash__ = None


class _StrictUfunc:
    """A NumPy ufunc whose calls, `.at`, `.reduce` and friends take and give strict arrays."""

    def __init__(self, ufunc):
        self._u = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        what = f"xp.{self.__name__}"
        return _wrap(self._u(*_unwrap(args, what), **_unwrap(kwargs, what)))

    def __getattr__(self, name):
        method = getattr(self._u, name)
        what = f"xp.{self.__name__}.{name}"
        return lambda *a, **k: _wrap(method(*_unwrap(a, what), **_unwrap(k, what)))


class _StrictNamespace(types.ModuleType):
    """`xp` for the strict backend: NumPy's functions, taking and giving strict arrays only."""

    ndarray = StrictArray

    def __init__(self, name, target):
        super().__init__(name)
        self._target = target

    def __getattr__(self, name):
        obj = getattr(self._target, name)
        if isinstance(obj, np.ufunc):
            wrapped = _StrictUfunc(obj)
        elif isinstance(obj, types.ModuleType):
            wrapped = _StrictNamespace(f"{self.__name__}.{name}", obj)
        elif isinstance(obj, type) or not callable(obj):
            wrapped = obj  # dtypes, constants
        else:
            what = f"xp.{name}"

            def wrapped(*args, **kwargs):
                return _wrap(obj(*_unwrap(args, what), **_unwrap(kwargs, what)))
            wrapped.__name__ = name
        setattr(self, name, wrapped)
        return wrapped


class _StrictGenerator:
    """A seeded NumPy Generator whose draws come out as strict arrays."""

    def __init__(self, gen):
        self._g = gen

    @property
    def bit_generator(self):
        return self._g.bit_generator

    def __getattr__(self, name):
        method = getattr(self._g, name)
        return lambda *a, **k: _wrap(method(*_unwrap(a, "rng"), **_unwrap(k, "rng")))


strict = _StrictNamespace("npformer.strict", np)
strict.random = _StrictNamespace("npformer.strict.random", np.random)
strict.random.default_rng = lambda seed=None: _StrictGenerator(np.random.default_rng(seed))
