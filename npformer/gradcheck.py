"""Finite-difference gradient checks.

For a layer with output `out`, take a fixed random `dout` and the scalar L = sum(out * dout).
Its gradient with respect to any input or parameter X is exactly what `backward(dout)`
returns for X, so comparing that with central differences

    dL/dX[i] ~ (L(X[i] + eps) - L(X[i] - eps)) / (2 eps)

checks the backward against the forward. Run in float64: the difference error is
O(eps^2) and rounding error O(1e-16 / eps), both far below the 1e-6 bar.

For a tensor too large to visit every element, a random-direction check costs one pair of
forwards: (L(X + eps v) - L(X - eps v)) / (2 eps) against sum(dL/dX * v).

The error of a tensor is max|num - ana| / max(max|num|, max|ana|, floor), the worst element
measured against the tensor's largest gradient, so near-zero entries do not blow it up.

The floor is the rounding noise of the difference quotient itself: L carries an absolute error
near 1e-16 |L|, so (L+ - L-) / (2 eps) carries about 1e-16 |L| / eps, and a difference no
larger than that, divided by the floor, stays under the tolerance. It matters for tensors whose
true gradient is exactly zero, such as the key bias bk of attention: bk adds q.bk to every
score of a row, and softmax ignores a constant added to a whole row, so both "gradients" are
noise (1e-17 analytic, 1e-9 numeric) and only an absolute comparison makes sense.
"""

from dataclasses import dataclass

import numpy as np

from npformer.backend import get_xp, to_device, to_numpy

TOLERANCE = 1e-6
EPS = 1e-6
ROUNDOFF = 2.3e-16   # relative rounding error of L: one unit in the last place (machine epsilon, 2.2e-16), a little more


@dataclass
class CheckResult:
    layer: str
    tensor: str
    shape: tuple
    error: float
    worst: tuple          # index of the worst element, () for a random-direction check
    numeric: float
    analytic: float
    tolerance: float = TOLERANCE

    @property
    def passed(self):
        return bool(self.error <= self.tolerance)

    def describe(self):
        where = f"element {self.worst}" if self.worst else "random direction"
        return (f"{self.layer}: d/d{self.tensor} {self.shape} relative error {self.error:.2e} "
                f"> {self.tolerance:.0e} at {where}: numeric {self.numeric:.10g}, analytic {self.analytic:.10g}")


class GradientCheckError(AssertionError):
    pass


def _loss(forward, dout):
    return float((forward() * dout).sum())


def _floor(loss_scale, eps, tolerance):
    """The smallest gradient scale worth a relative comparison (see the module docstring)."""
    return ROUNDOFF * max(loss_scale, 1.0) / eps / tolerance


def check_gradients(name, forward, backward, tensors, grads, *, seed=0, eps=EPS,
                    tolerance=TOLERANCE, max_elements=None, directions=0):
    """Check the gradients of every tensor in `tensors` against central differences.

    name:      a label for the report (usually the layer).
    forward:   forward() -> out, reading the live arrays in `tensors` (perturbed in place).
    backward:  backward(dout) -> {name: gradient} for inputs; parameter gradients may be read
               from `grads` after it runs (zero them before calling check_gradients).
    tensors:   {name: live float64 array}: inputs and parameters to check.
    grads:     {name: gradient array} filled by backward for the parameters (inputs come from
               backward's return value).
    max_elements: check at most this many elements of each tensor (a random sample), None = all.
    directions:   also run this many random-direction checks per tensor.
    Returns a list of CheckResult, one per tensor (and per direction).
    """
    rng = np.random.default_rng(seed)
    out = forward()
    xp = get_xp(out)
    dout = to_device(rng.standard_normal(out.shape), xp)          # the fixed random upstream gradient
    floor = _floor(float(abs(out * dout).sum()), eps, tolerance)  # sum |terms| bounds the rounding of L
    analytic = dict(backward(dout) or {})
    for k, g in grads.items():
        analytic.setdefault(k, g)
    analytic = {k: to_numpy(v) for k, v in analytic.items() if v is not None}

    results = []
    for tname, t in tensors.items():
        ana = analytic.get(tname)
        if ana is None:
            raise GradientCheckError(f"{name}: backward gave no gradient for {tname}.")
        idx = [tuple(int(i) for i in np.unravel_index(j, t.shape)) for j in range(t.size)]
        if max_elements is not None and len(idx) > max_elements:
            idx = [idx[j] for j in rng.choice(len(idx), max_elements, replace=False)]
        num = np.zeros(len(idx))
        for n, i in enumerate(idx):
            old = float(t[i])
            t[i] = old + eps
            lp = _loss(forward, dout)
            t[i] = old - eps
            lm = _loss(forward, dout)
            t[i] = old
            num[n] = (lp - lm) / (2 * eps)
        a = np.array([ana[i] for i in idx])
        diff = np.abs(num - a)
        worst = int(diff.argmax()) if len(idx) else 0
        scale = max(np.abs(num).max(initial=0), np.abs(a).max(initial=0), floor)
        results.append(CheckResult(name, tname, tuple(t.shape), float(diff.max(initial=0) / scale),
                                   idx[worst] if idx else (), float(num[worst]) if idx else 0.0,
                                   float(a[worst]) if idx else 0.0, tolerance))
        for _ in range(directions):
            results.append(_direction_check(name, tname, t, ana, forward, dout, rng, eps, tolerance, floor))
    return results


def _direction_check(name, tname, t, ana, forward, dout, rng, eps, tolerance, floor):
    v_host = rng.standard_normal(t.shape)
    v = to_device(v_host, get_xp(t))
    orig = t.copy()
    t[...] = orig + eps * v
    lp = _loss(forward, dout)
    t[...] = orig - eps * v
    lm = _loss(forward, dout)
    t[...] = orig
    num = (lp - lm) / (2 * eps)
    a = float((ana * v_host).sum())
    err = abs(num - a) / max(abs(num), abs(a), floor)
    return CheckResult(name, f"{tname}·v", tuple(t.shape), err, (), num, a, tolerance)


def assert_all_pass(results):
    """Raise with a description of every failing tensor."""
    failed = [r.describe() for r in results if not r.passed]
    if failed:
        raise GradientCheckError("\n".join(failed))
    return results
