"""`npformer exercise check`: load a learner's file, then hold its backward against finite
differences, the layer's edge cases and the purity rules, one line per tensor.

For each case of the exercise (ladder.py builds them), on small float64 shapes:

    forward      the learner's forward gives the package layer's output (the forward is given)
    each tensor  the shape and dtype of its gradient; its finite-difference check
                 (npformer.gradcheck); on failure the worst element, both values, the equation
                 it comes from, and a hint when the answer is a known wrong one (hints.py)
    purity       dout and the cache unchanged; a second backward doubles the parameter
                 gradients (they accumulate with +=)
"""

import copy
import importlib.util
import inspect
import pathlib
import sys
import traceback

import numpy as np

from npformer.errors import NpformerError
from npformer.gradcheck import check_gradients

SEED = 0


class ExerciseError(NpformerError):
    """A file that cannot be checked: it does not import, lacks the class, or its backward
    raises or returns the wrong thing. The message is one sentence pointing at the learner's line."""


# ----------------------------------------------------------------------------- loading

def exercise_of(path, module=None):
    """The exercise a file is for: its EXERCISE variable, else its file name."""
    from npformer.exercises.ladder import EXERCISES
    name = getattr(module, "EXERCISE", None) or pathlib.Path(path).stem
    if name not in EXERCISES:
        raise ExerciseError(f"{path} is not an exercise file: it has no EXERCISE = \"...\" line naming one of "
                            f"{', '.join(EXERCISES)}, and its name is not one of them either.")
    return EXERCISES[name]


def load(path):
    """Import the learner's file as a module; return (exercise, the learner's class)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ExerciseError(f"{path} does not exist; `npformer exercise start NAME` writes the exercise files.")
    spec = importlib.util.spec_from_file_location(f"npformer_exercise_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ExerciseError(f"{path}, line {e.lineno}: syntax error: {e.msg}.") from None
    except Exception as e:
        raise ExerciseError(f"{path} cannot be imported: {_where(e, path)}") from None
    ex = exercise_of(path, module)
    cls = getattr(module, ex.cls, None)
    if not isinstance(cls, type):
        raise ExerciseError(f"{path} has no class {ex.cls}: the {ex.name} exercise checks `class {ex.cls}`, "
                            "as the template names it.")
    template = ex.template()
    for method in ("__init__", "forward", *ex.methods):
        mine, theirs = getattr(cls, method, None), getattr(template, method)
        if mine is None or not _accepts(mine, _arguments(theirs)):
            line = _line_of(mine)
            raise ExerciseError(f"{path}{line}: {ex.cls}.{method} takes ({', '.join(_arguments(mine) or [])}), "
                                f"but the template's takes ({', '.join(_arguments(theirs))}); keep the template's "
                                "signature.")
    return ex, cls


def _arguments(fn):
    try:
        return [p for p in inspect.signature(fn).parameters if p != "self"]
    except (TypeError, ValueError):
        return None


def _accepts(fn, names):
    """Whether fn can be called as the template's method is: self and its arguments, by position."""
    try:
        inspect.signature(fn).bind(None, *names)
        return True
    except (TypeError, ValueError):
        return False


def _line_of(fn):
    try:
        return f", line {inspect.getsourcelines(fn)[1]}"
    except (TypeError, OSError):
        return ""


def _where(e, path):
    """'<Error> at FILE line N: `code`: message', at the deepest frame in the learner's file."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if pathlib.Path(f.filename).resolve() == pathlib.Path(path).resolve()]
    message = f"{type(e).__name__}: {e}".rstrip(": ")
    if not frames:
        return f"{message}."
    f = frames[-1]
    return f"{message}, at {path} line {f.lineno}: `{(f.line or '').strip()}`."


def call(path, cls_name, method, fn, *args):
    """Run one of the learner's methods; an exception becomes one sentence at the learner's line."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise ExerciseError(f"{cls_name}.{method} in {path} is not written yet (it raises "
                            "NotImplementedError): write it, then check again.") from None
    except ExerciseError:
        raise
    except Exception as e:
        hint = ""
        if isinstance(e, ValueError) and "non-broadcastable output operand" in str(e):
            from npformer.exercises.hints import BROADCAST_ADD
            hint = f" {BROADCAST_ADD}"
        raise ExerciseError(f"{cls_name}.{method} raised {_where(e, path)}{hint}") from None


# ----------------------------------------------------------------------------- checking

def check_file(path, write=print):
    """Check the learner's file; print the report with `write`. Returns True if everything passed."""
    ex, cls = load(path)
    write(f"{ex.name}: {ex.cls}.{' and .'.join(ex.methods)} in {path}   (read docs/{ex.page})")
    failed = total = 0
    for case_title, build in ex.cases:
        write(f"  {case_title}")
        lines = check_case(ex, cls, build, path)
        for ok, line in lines:
            write(f"    {line}")
            total += 1
            failed += not ok
    if failed:
        write(f"{ex.name}: {failed} of {total} checks fail.")
    else:
        write(f"{ex.name}: all {total} checks pass." + (f" Now watch it learn: npformer exercise check {path} --train"
                                                        if ex.train else ""))
    return not failed


def check_case(ex, cls, build, path):
    """[(passed, line)] for one case: forward, every tensor, purity."""
    mine = call(path, ex.cls, "__init__", lambda: build(cls))
    ref = build(ex.solution)
    name = ex.cls

    out = call(path, name, "forward", mine.forward)
    want = ref.forward()
    err = _rel_err(out, want)
    if err is None or err > 1e-10:
        return [(False, f"forward  FAIL  differs from the package's layer ({_shape(out)} against {_shape(want)}): "
                        "the forward is given, restore the template's")]
    lines = [(True, f"forward  {_shape(out)}  matches the package's layer")]

    dout = np.random.default_rng(SEED).standard_normal(np.shape(out))
    yours = _run_backward(path, name, mine, dout)
    right = _run_backward(None, name, ref, dout)
    ctx = HintContext(ex, ref, mine, dout, yours, right)

    per_tensor = {}                                              # tensor -> its line, in the order of the gradients
    for t, r in right.items():
        y = yours.get(t)
        if y is None or np.shape(y) != np.shape(r) or np.asarray(y).dtype != np.float64:
            got = "nothing" if y is None else f"{_shape(y)} {np.asarray(y).dtype}"
            per_tensor[t] = (False, f"d{t:<10} FAIL  is {got}, should be {_shape(r)} float64"
                                    f"{_pointer(ex, t, ctx, shape=True)}")
    checked = [t for t in right if t not in per_tensor]
    for r in _finite_differences(path, name, mine, checked) if checked else []:
        if r.passed:
            per_tensor[r.tensor] = (True, f"d{r.tensor:<10} {_shape(yours[r.tensor]):<12} pass")
        else:
            per_tensor[r.tensor] = (False, f"d{r.tensor:<10} FAIL  wrong at {list(r.worst)}: numeric {r.numeric:.6g}, "
                                           f"yours {r.analytic:.6g}{_pointer(ex, r.tensor, ctx)}")
    lines += [per_tensor[t] for t in right]
    lines.extend(_purity(path, name, mine, dout, ex, ctx))
    return lines


def _run_backward(path, name, case, dout):
    """Zero the gradients, run backward once: {tensor: gradient} for inputs and parameters."""
    case.zero_grad()
    grads = call(path, name, "backward", lambda: case.backward(dout.copy())) if path else case.backward(dout.copy())
    grads = {k: (None if v is None else np.array(v)) for k, v in grads.items()}
    grads.update({k: g.copy() for k, g in case.grads().items()})
    return grads


def _finite_differences(path, name, case, tensors):
    case.zero_grad()
    live = {**case.inputs, **case.params()}
    return check_gradients(name, case.forward, lambda d: call(path, name, "backward", lambda: case.backward(d)),
                           {t: live[t] for t in tensors}, case.grads(), seed=SEED, max_elements=case.max_elements)


def _purity(path, name, case, dout, ex, ctx):
    lines = []
    d = dout.copy()
    before = copy.deepcopy(case.cache())
    case.zero_grad()
    buffers = {k: id(g) for k, g in case.grads().items()}
    call(path, name, "backward", lambda: case.backward(d))
    once = {k: g.copy() for k, g in case.grads().items()}
    if not np.array_equal(d, dout):
        lines.append((False, "purity   FAIL  backward changed dout in place: build new arrays (dx = dout * m, "
                             "not dout *= m); the caller may still need dout"))
    if not _same(before, case.cache()):
        lines.append((False, "purity   FAIL  backward changed the cache: the forward's values must survive, "
                             "so build new arrays instead of updating the cached ones"))
    rebound = [k for k, g in case.grads().items() if id(g) != buffers[k]]
    if rebound:
        lines.append((False, f"d{rebound[0]:<10} FAIL  backward put a new array in self.grads: add into the one "
                             "there, in place (self.grads[...] += g); the optimiser holds that array"))
        return lines
    call(path, name, "backward", lambda: case.backward(dout.copy()))
    for k, g in case.grads().items():
        if not np.allclose(g, 2 * once[k], rtol=1e-9, atol=1e-12):
            lines.append((False, f"d{k:<10} FAIL  a second backward did not double it{_pointer(ex, k, ctx, twice=True)}"))
    if not lines:
        lines.append((True, "purity   pass  dout and the cache unchanged; parameter gradients accumulate"))
    return lines


def _pointer(ex, tensor, ctx, shape=False, twice=False):
    """' -> see (LABEL): hint', the specific hint when the answer is a known wrong one."""
    from npformer.exercises.hints import find_hint
    label, what = ex.label_of(tensor)
    hint = find_hint(ctx, tensor, shape=shape, twice=twice)
    return f" -> see ({label}): {hint or what}"


class HintContext:
    """What a hint may look at: the exercise, the reference and learner cases, the dout used,
    and both sets of gradients."""

    def __init__(self, ex, ref, mine, dout, yours, right):
        self.ex, self.ref, self.mine, self.dout, self.yours, self.right = ex, ref, mine, dout, yours, right

    def reference(self, dout):
        """The reference gradients for another dout."""
        return _run_backward(None, self.ex.cls, self.ref, dout)


def _rel_err(a, b):
    try:
        a, b = np.asarray(a, float), np.asarray(b, float)
    except (TypeError, ValueError):
        return None
    if a.shape != b.shape or not np.isfinite(a).all():
        return None
    return float(np.abs(a - b).max(initial=0) / max(1.0, np.abs(b).max(initial=0)))


def _shape(a):
    return str(tuple(np.shape(a))) if a is not None else "None"


def _same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape \
            and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return True                                                  # numbers, flags, None: not arrays the forward made


def main_check(path, write=print):
    """check_file, with the learner's import path set up so `from npformer...` works in the file."""
    sys.path.insert(0, str(pathlib.Path(path).resolve().parent))
    try:
        return check_file(path, write)
    finally:
        sys.path.pop(0)
