"""The strict backend: a CPU stand-in for CuPy, and the counter of array operations.

CI has no GPU. The strict backend's arrays wrap NumPy arrays but refuse everything a CuPy
array refuses: arithmetic with a plain NumPy array, NumPy functions called on them, and
silent conversion to a host array. A suite that passes under `NPFORMER_BACKEND=strict`
therefore keeps host and device apart the way CuPy needs. npformer.backend chooses it; math
code reaches it only through `get_xp`, like any backend.

Because every array operation passes through it, it also counts them (`OperationCount`): on
a GPU each operation is at least one kernel launched from Python, and at the model's sizes
the launches, not the arithmetic, set the step time. What counts as one operation: a call
into the array module (a function, a ufunc or one of its methods, a random draw), an array
operator (`a + b`, `a += b`, `-a`, `a @ b`), an array method that computes (`a.sum()`,
`a.fill(0)`, `a.astype(t)`), an assignment into an array, indexing that gathers (an index
array), and a transfer between host and device. Views are free: slicing, `.T`, and a
reshape, transpose or broadcast that needs no copy; one that does copy counts.
"""

import os
import sys
import types
from collections import Counter

import numpy as np

# Functions and methods that return a view when they can; they count only when they copy.
VIEWS = frozenset({"reshape", "transpose", "swapaxes", "broadcast_to", "expand_dims", "squeeze",
                   "ravel", "view", "moveaxis"})


# ----------------------------------------------------------------------------- the counter

_COUNTERS = []
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # sites are named from here


class OperationCount:
    """Counts the strict backend's array operations while active:

        with OperationCount() as ops:
            step()
        ops.n                   # operations in step()

    sites=True also counts them by the line of npformer code that made them
    (`ops.sites`, a Counter of "file:line"), to find where they come from."""

    def __init__(self, sites=False):
        self.n = 0
        self.sites = Counter() if sites else None

    def __enter__(self):
        _COUNTERS.append(self)
        return self

    def __exit__(self, *exc):
        _COUNTERS.remove(self)


def _tick():
    for c in _COUNTERS:
        c.n += 1
        if c.sites is not None:
            c.sites[_caller()] += 1


def _caller():
    """The first frame outside this module: the line of code that asked for the operation."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    if frame is None:
        return "?"
    path = frame.f_code.co_filename
    if path.startswith(_ROOT):
        path = os.path.relpath(path, _ROOT)
    return f"{path}:{frame.f_lineno}"


def _tick_unless_view(result, source):
    """Count a view-making call only if it had to copy."""
    if not (isinstance(result, np.ndarray) and isinstance(source, np.ndarray)
            and np.may_share_memory(result, source)):
        _tick()


# ----------------------------------------------------------------------------- arrays

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
    if isinstance(x, np.generic):                                # a reduction's result: CuPy keeps it a 0-d array
        return StrictArray(np.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def from_host(x):
    """Host data -> a strict array (a copy): the transfer to the device."""
    _tick()
    return StrictArray(np.array(x))


def to_host(x):
    """A strict array -> a NumPy array (a copy): the transfer back to the host."""
    _tick()
    return x._a.copy()


def _binary(ufunc, reflected=False):
    def op(self, other):
        _tick()
        other = _unwrap(other, f"operator {ufunc.__name__}")
        return StrictArray(ufunc(other, self._a) if reflected else ufunc(self._a, other))
    return op


def _inplace(ufunc):
    def op(self, other):
        _tick()
        ufunc(self._a, _unwrap(other, f"operator {ufunc.__name__}="), out=self._a)
        return self
    return op


def _unary(ufunc):
    def op(self):
        _tick()
        return StrictArray(ufunc(self._a))
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
        _tick()
        inputs = _unwrap(inputs, f"numpy.{ufunc.__name__}")
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"], f"numpy.{ufunc.__name__}")
        return _wrap(getattr(ufunc, method)(*inputs, **kwargs))

    def tolist(self):
        raise StrictError("tolist() on a device array; use npformer.backend.to_numpy first.")

    # what CuPy allows: scalars out of 0-d or 1-element arrays (a transfer), shape queries, views
    def __float__(self):
        _tick()
        return float(self._a)

    def __int__(self):
        _tick()
        return int(self._a)

    def __bool__(self):
        _tick()
        return bool(self._a)

    def __index__(self):
        _tick()
        return self._a.__index__()

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def __getitem__(self, key):
        out = self._a[_unwrap(key, "indexing")]
        _tick_unless_view(out, self._a)                          # an index array gathers: a copy
        return _wrap(out)

    def __setitem__(self, key, value):
        _tick()
        self._a[_unwrap(key, "indexing")] = _unwrap(value, "assignment")

    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__ and friends would let NumPy convert silently
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            def method(*args, **kwargs):
                out = attr(*_unwrap(args, f".{name}()"), **_unwrap(kwargs, f".{name}()"))
                if name in VIEWS:
                    _tick_unless_view(out, self._a)
                else:
                    _tick()
                return _wrap(out)
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

    __neg__, __abs__, __invert__ = _unary(np.negative), _unary(np.absolute), _unary(np.invert)
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


# ----------------------------------------------------------------------------- the module

class _StrictUfunc:
    """A NumPy ufunc whose calls, `.at`, `.reduce` and friends take and give strict arrays."""

    def __init__(self, ufunc):
        self._u = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        _tick()
        what = f"xp.{self.__name__}"
        return _wrap(self._u(*_unwrap(args, what), **_unwrap(kwargs, what)))

    def __getattr__(self, name):
        method = getattr(self._u, name)
        what = f"xp.{self.__name__}.{name}"

        def call(*a, **k):
            _tick()
            return _wrap(method(*_unwrap(a, what), **_unwrap(k, what)))
        return call


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
                unwrapped = _unwrap(args, what)
                out = obj(*unwrapped, **_unwrap(kwargs, what))
                if name in VIEWS and unwrapped:
                    _tick_unless_view(out, unwrapped[0])
                else:
                    _tick()
                return _wrap(out)
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

        def draw(*a, **k):
            _tick()
            return _wrap(method(*_unwrap(a, "rng"), **_unwrap(k, "rng")))
        return draw


strict = _StrictNamespace("npformer.strict", np)
strict.random = _StrictNamespace("npformer.strict.random", np.random)
strict.random.default_rng = lambda seed=None: _StrictGenerator(np.random.default_rng(seed))
