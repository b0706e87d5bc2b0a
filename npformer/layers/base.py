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

A whole model then packs its parameters into one flat array and its gradients into a second
(`pack`, layers/arena.py): every named parameter and gradient becomes a view of its slice, so
the optimiser, clipping and zero_grad each work on one array instead of one per parameter.
"""

import numpy as np

from npformer.backend import get_backend, to_device
from npformer.layers.arena import Arena


class Layer:
    """Base class: parameters, gradients, children, and the walk that names them."""

    def __init__(self, xp=None, dtype="float32"):
        self.xp = get_backend(xp)
        self.dtype = np.dtype(dtype)
        self.params = {}
        self.grads = {}
        self.cache = None
        self.tied = {}                                           # name -> (owner layer, owner's name, transposed)
        self.arena = None                                        # set by pack(), on the whole model

    def add_param(self, name, host_value):
        """Register a parameter from a host array; its gradient starts at zero."""
        self.params[name] = to_device(np.asarray(host_value, dtype=self.dtype), self.xp)
        self.grads[name] = self.xp.zeros_like(self.params[name])
        return self.params[name]

    def borrow_param(self, name, owner, owner_name, transpose=False):
        """Use another layer's parameter (weight tying): the same memory for the value and for
        the gradient (transposed, if asked), so every use adds into one buffer. It is listed
        under its owner only."""
        self.tied[name] = (owner, owner_name, transpose)
        self.retie()
        return self.params[name]

    def retie(self):
        """Point the tied parameters at their owners' arrays again (after packing moved them)."""
        for name, (owner, owner_name, transpose) in self.tied.items():
            p, g = owner.params[owner_name], owner.grads[owner_name]
            self.params[name], self.grads[name] = (p.T, g.T) if transpose else (p, g)

    # ------------------------------------------------------------------ the arena's side

    def blocks(self):
        """name -> array: the parameter memory this layer owns, which pack() moves into the arena.
        Usually its parameters; a layer whose parameters are views of larger arrays (multi-head
        attention's Wq, Wk, Wv in Wqkv) names those arrays instead and extends views()."""
        return {name: p for name, p in self.params.items() if name not in self.tied}

    def views(self, blocks):
        """The named parameters, made from arrays shaped like blocks(): the blocks themselves."""
        return dict(blocks)

    def bind(self, params, grads):
        """Use these arrays, shaped like blocks() (views of the arena's two flat arrays), as the
        parameters' values and gradients; tied ones follow with retie()."""
        self.params, self.grads = self.views(params), self.views(grads)

    def pack(self):
        """Move every parameter of this layer tree into one flat array and every gradient into a
        second (self.arena); the names, shapes and values stay. Models call it last in their
        constructor."""
        self.arena = Arena(self)

    # ------------------------------------------------------------------ the tree

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
        """(full name, layer, local name) of every parameter, skipping tied ones."""
        for prefix, layer in self.named_layers():
            for name in layer.params:
                if name not in layer.tied:
                    yield (f"{prefix}.{name}" if prefix else name), layer, name

    def share_parameters(self, other):
        """Make this model use `other`'s parameter memory (its arena's flat array), keeping its
        own gradients and caches. `other` has the same structure: a model built from the same
        config. Replicas made this way run on parts of a batch side by side, each adding into
        its own gradients (train/parallel.py)."""
        self.arena.share_parameters(other.arena)

    def parameters(self):
        """name -> the live parameter array (changing it in place changes the model)."""
        return {full: layer.params[name] for full, layer, name in self._owned()}

    def gradients(self):
        """name -> gradient, with the keys and shapes of parameters()."""
        return {full: layer.grads[name] for full, layer, name in self._owned()}

    def zero_grad(self):
        """Set every gradient of this layer and its descendants to zero: one fill of the arena's
        gradient array for a packed model, one fill per gradient otherwise."""
        if self.arena is not None:
            self.arena.grads.fill(0)
            return
        for _, layer in self.named_layers():
            for name, g in layer.grads.items():
                if name not in layer.tied:
                    g.fill(0)
