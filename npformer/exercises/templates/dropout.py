"""Exercise 7, dropout: the backward pass of inverted dropout.   Read: docs/derivations/dropout.md

Write `backward`, then run `npformer exercise check dropout.py`. The forward is given in its
plain form; leave it as it is: the checker freezes the mask and differentiates it numerically.
"""

import numpy as np

EXERCISE = "dropout"


class Dropout:
    """Training: y = x * m / (1 - p), m ~ Bernoulli(1 - p); evaluation: y = x."""

    def __init__(self, p, rng=None):
        self.p = p
        self.rng = np.random.default_rng(0) if rng is None else rng
        self.frozen = False                                      # True: reuse the last mask
        self.params, self.grads = {}, {}
        self.cache = None

    def forward(self, x, training=True):                         # x: any shape
        if not training or self.p == 0.0:
            self.cache = None
            return x
        if not (self.frozen and self.cache is not None and self.cache.shape == x.shape):
            self.cache = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)  # the scaled mask m/(1-p)
        return x * self.cache                                    # (DO-1)

    def backward(self, dout):
        """The gradient of y = x * m / (1 - p) (or of y = x when forward ran with training=False).

        Inputs: dout, x's shape; self.cache is the scaled mask m / (1 - p), or None.
        Returns: dx, x's shape  (DO-2)
        Leave dout and self.cache unchanged.   Read: docs/derivations/dropout.md
        """
        raise NotImplementedError("write Dropout.backward")
