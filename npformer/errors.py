"""The errors npformer raises for bad input: each carries one sentence a user can act on.

The CLI prints the sentence and exits non-zero instead of showing a traceback.
"""


class NpformerError(Exception):
    """Base of every user-facing error."""


class ConfigError(NpformerError, ValueError):
    """A configuration or argument that cannot work (e.g. d_model not divisible by n_heads)."""


class InputError(NpformerError, ValueError):
    """Data that does not fit the model: ids out of range, wrong shapes, too long, empty."""
