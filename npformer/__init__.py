"""npformer: the Transformer of "Attention Is All You Need" on NumPy, with CuPy as a drop-in GPU
backend and a hand-written, gradient-checked backward pass for every layer."""

from npformer.backend import get_backend, to_device, to_numpy
from npformer.errors import ConfigError, InputError, NpformerError
from npformer.loss import cross_entropy
from npformer.model import CheckpointError, Transformer, TransformerConfig, load

__version__ = "0.1.0"

__all__ = ["Transformer", "TransformerConfig", "cross_entropy", "load", "get_backend", "to_device", "to_numpy",
           "NpformerError", "ConfigError", "InputError", "CheckpointError"]
