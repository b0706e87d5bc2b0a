"""The errors npformer raises for bad input: each carries one sentence a user can act on.

The CLI prints the sentence and exits non-zero instead of showing a traceback: 2 for bad usage
(a setting, an argument or a file that cannot work), 1 for a failure while running (training
diverged, no GPU, a full disk). The checks below are shared by every public boundary, so one
kind of bad number always gets the same sentence.
"""

import math
import numbers


class NpformerError(Exception):
    """Base of every user-facing error."""

    exit_code = 2                  # bad usage; a failure while running sets 1


class ConfigError(NpformerError, ValueError):
    """A configuration or argument that cannot work (e.g. d_model not divisible by n_heads)."""


class InputError(NpformerError, ValueError):
    """Data that does not fit the model: ids out of range, wrong shapes, too long, empty."""


class StorageError(NpformerError, OSError):
    """A file could not be written or read (disk full, no permission, a folder that is a file);
    whatever was saved before is left as it was."""

    exit_code = 1


def os_reason(e):
    """An OSError's reason as words inside a sentence: 'no space left on device'."""
    what = (e.strerror or str(e)).rstrip(".")
    return what[:1].lower() + what[1:]


def check_int(name, value, low=None, high=None, error=ConfigError):
    """value as a Python int, or `error` naming `name` unless it is an integer in [low, high].
    NumPy integers count as integers; bools and floats do not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(f"{name} must be an integer, got {value!r}.")
    value = int(value)
    _check_range(name, value, low, high, error, "an integer")
    return value


def check_real(name, value, low=None, high=None, error=ConfigError, below_high=False, positive=False):
    """value as a Python float, or `error` unless it is a finite number in [low, high]
    ([low, high) with below_high; above 0 with positive)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise error(f"{name} must be a number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise error(f"{name} must be a finite number, got {value}.")
    if positive and value <= 0:
        raise error(f"{name} must be a positive number, got {value!r}.")
    _check_range(name, value, low, high, error, "a number", below_high)
    return value


def _check_range(name, value, low, high, error, kind, below_high=False):
    too_high = high is not None and (value >= high if below_high else value > high)
    if (low is not None and value < low) or too_high:
        bounds = (f"in [{_num(low)}, {_num(high)}{')' if below_high else ']'}" if low is not None and high is not None
                  else f"at least {_num(low)}" if low is not None else f"at most {_num(high)}")
        raise error(f"{name} must be {kind} {bounds}, got {value!r}.")


def _num(x):
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"
