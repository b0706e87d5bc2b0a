"""npformer: the Transformer of "Attention Is All You Need" on NumPy, with CuPy as a drop-in GPU
backend and a hand-written, gradient-checked backward pass for every layer."""

from npformer.backend import get_backend, to_device, to_numpy

__version__ = "0.1.0"
