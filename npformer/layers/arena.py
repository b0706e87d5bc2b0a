"""The parameter arena: every parameter of a model in one flat array, every gradient in a second.

On a GPU each array operation is a kernel launched from Python. An optimiser that loops over
a model's ~90 parameters launches ~90 kernels for each of its passes; over one flat array it
launches one. So a model keeps all its parameters in `arena.params` and all their gradients
in `arena.grads`, both 1-D, with the same layout: each layer's blocks (Layer.blocks) get
consecutive slices, in the order of the layer walk, and the layer then uses views of them
(Layer.bind). Nothing else changes: `parameters()` and `gradients()` still give the named
arrays, with their shapes, and writing into one writes into the arena.

    zero_grad          arena.grads.fill(0)                         one operation
    clipping           the norm of arena.grads, then one scale     a handful
    Adam               m, v: flat arrays of the same layout        a handful of passes

Weight tying needs nothing special: a tied matrix is one block, used by three layers through
views. The arena holds one dtype, the model's.
"""


class Arena:
    """The two flat arrays of a model (`params`, `grads`) and where each layer's blocks lie in them."""

    def __init__(self, model):
        xp = model.xp
        self.layout = []                                         # (dotted name, layer, {block: (slice, shape)})
        offset = 0
        for prefix, layer in model.named_layers():
            spans = {}
            for name, block in layer.blocks().items():
                spans[name] = (slice(offset, offset + block.size), block.shape)
                offset += block.size
            self.layout.append((prefix, layer, spans))
        self.params = xp.empty(offset, dtype=model.dtype)        # (P,)  P parameters in all
        self.grads = xp.zeros(offset, dtype=model.dtype)         # (P,)
        for _, layer, spans in self.layout:                      # the initial values move in
            for name, block in layer.blocks().items():
                self.params[spans[name][0]] = block.reshape(-1)
        self._bind()

    @property
    def size(self):
        return self.params.size

    def _blocks(self, flat, spans):
        """One layer's blocks as views of a flat array."""
        return {name: flat[s].reshape(shape) for name, (s, shape) in spans.items()}

    def _bind(self):
        for _, layer, spans in self.layout:
            layer.bind(self._blocks(self.params, spans), self._blocks(self.grads, spans))
        for _, layer, _ in self.layout:
            layer.retie()

    def share_parameters(self, other):
        """Use `other`'s parameter array (another arena of the same layout) instead of this one's;
        the gradients stay this arena's own. For replicas (train/parallel.py)."""
        if other.size != self.size:
            raise ValueError(f"arenas of {self.size} and {other.size} parameters cannot share.")
        self.params = other.params
        self._bind()

    def views(self, flat):
        """name -> view of `flat` (an array shaped like params), with the names and shapes of the
        model's parameters(): how Adam shows its flat moments by name, for checkpoints."""
        out = {}
        for prefix, layer, spans in self.layout:
            for name, view in layer.views(self._blocks(flat, spans)).items():
                out[f"{prefix}.{name}" if prefix else name] = view
        return out
