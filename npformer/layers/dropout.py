"""Inverted dropout.  docs: derivations/dropout.md"""

from npformer.layers.base import Layer


class Dropout(Layer):
    """Training: y = x * m / (1 - p) with m ~ Bernoulli(1 - p); evaluation: y = x.

    Scaling by 1/(1-p) at training time keeps E[y] = x, so evaluation needs no rescaling.
    The mask drawn in forward is the one backward uses. `freeze()` keeps reusing the last
    mask, so a gradient check can run with dropout on.

    Inputs: x (any shape).  Returns: y (same shape).
    rng: a generator of the layer's backend (npformer.backend.default_rng), usually shared
    by the whole model so that one seed fixes every mask.
    """

    def __init__(self, p, rng, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}.")
        self.p = p
        self.rng = rng
        self.frozen = False

    def freeze(self, frozen=True):
        """Reuse the last mask instead of drawing a new one (for gradient checks)."""
        self.frozen = frozen

    def forward(self, x, training=True):                         # x: (...)
        if not training or self.p == 0.0:
            self.cache = None
            return x
        if not (self.frozen and self.cache is not None and self.cache.shape == x.shape):
            # One array from draw to mask, updated in place: uniform draws in x's dtype (float32
            # draws cost half of float64), 1.0 where kept and 0.0 where dropped, then scaled.
            mask = self.rng.random(x.shape, dtype=x.dtype)       # (...) u ~ U[0, 1)
            self.xp.greater_equal(mask, self.p, out=mask)        # (...) m = [u >= p], P(keep) = 1-p
            mask *= 1.0 / (1.0 - self.p)                         # (...) the scaled mask m/(1-p)
            self.cache = mask
        return x * self.cache                                    # (...)  (DO-1)

    def backward(self, dout):                                    # dout: (...)
        if self.cache is None:
            return dout
        return dout * self.cache                                 # (...)  (DO-2)


def use_generator(model, rng):
    """Draw every dropout mask of `model` (and its sub-layers) from `rng`, a generator of the
    model's backend: after a resume that could not restore the saved one, and for a replica
    that needs a stream of its own."""
    model.drop_rng = rng
    for _, layer in model.named_layers():
        if isinstance(layer, Dropout):
            layer.rng = rng
