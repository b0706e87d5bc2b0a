"""The contract every layer keeps.

A layer owns its parameters (`params`), their gradients (`grads`, same names, same shapes)
and whatever its backward needs from the last forward (`cache`). One instance serves one
call site, so its cache is never overwritten by another use before backward reads it.

    out = layer.forward(x)        # caches what backward needs
    dx = layer.backward(dout)     # pure in dout and cache; parameter gradients are *added*
    layer.zero_grad()             # before the next backward

Gradients accumulate with `+=` so a parameter used twice (tied weights) is right without
special cases. Parameters are created on the host from a seeded NumPy generator, in float64,
then cast and moved to the backend, so the same seed gives the same model on every backend.
"""

import numpy as np

from npformer.backend import get_backend, to_device


class Layer:
    """Base class: parameters, gradients, children, and the walk that names them."""

    def __init__(self, xp=None, dtype="float32"):
        self.xp = get_backend(xp)
        self.dtype = np.dtype(dtype)
        self.params = {}
        self.grads = {}
        self.cache = None
        self.borrowed = set()
        self._grad_buffers = None                                # zero_grad's list, made on its first call

    def add_param(self, name, host_value):
        """Register a parameter from a host array; its gradient starts at zero."""
        self.params[name] = to_device(np.asarray(host_value, dtype=self.dtype), self.xp)
        self.grads[name] = self.xp.zeros_like(self.params[name])
        return self.params[name]

    def borrow_param(self, name, param, grad):
        """Use another layer's parameter (weight tying): the same memory for the value and for
        the gradient, so every use adds into one buffer. It is listed under its owner only."""
        self.params[name] = param
        self.grads[name] = grad
        self.borrowed.add(name)
        return param

    def children(self):
        """Sub-layers by attribute name, in definition order; lists become name.0, name.1, ..."""
        out = {}
        for name, value in vars(self).items():
            if name.startswith("_"):
                continue
            if isinstance(value, Layer):
                out[name] = value
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Layer) for v in value):
                for i, v in enumerate(value):
                    out[f"{name}.{i}"] = v
        return out

    def named_layers(self, prefix=""):
        """(dotted name, layer) for this layer and every descendant, depth first."""
        yield prefix.rstrip("."), self
        for name, child in self.children().items():
            yield from child.named_layers(f"{prefix}{name}.")

    def _owned(self):
        """(full name, layer, local name) of every parameter, skipping borrowed (tied) ones."""
        for prefix, layer in self.named_layers():
            for name in layer.params:
                if name not in layer.borrowed:
                    yield (f"{prefix}.{name}" if prefix else name), layer, name

    def share_parameters(self, other):
        """Make this layer tree use `other`'s parameter arrays (the same memory), keeping its own
        gradients and caches. `other` has the same structure: a model built from the same
        config. Replicas made this way run on parts of a batch side by side, each adding into
        its own gradients (train/parallel.py)."""
        for (_, mine), (_, theirs) in zip(self.named_layers(), other.named_layers()):
            mine.take_parameters(theirs)

    def take_parameters(self, other):
        """This layer's part of share_parameters; a layer that keeps parameter arrays outside
        `params` (multi-head attention's packed Wqkv) extends it."""
        self.params = dict(other.params)

    def parameters(self):
        """name -> the live parameter array (changing it in place changes the model)."""
        return {full: layer.params[name] for full, layer, name in self._owned()}

    def gradients(self):
        """name -> gradient, with the keys and shapes of parameters()."""
        return {full: layer.grads[name] for full, layer, name in self._owned()}

    def zero_grad(self):
        """Set every gradient of this layer and its descendants to zero.

        The buffers are collected by walking the tree on the first call and kept: the walk
        costs more than the zeroing at the default size (about 1 ms of a 50 ms step), and the
        tree does not change once built (weight tying happens in the constructors)."""
        if self._grad_buffers is None:
            self._grad_buffers = [g for _, layer in self.named_layers() for g in layer.grads.values()]
        for g in self._grad_buffers:
            g.fill(0)
