"""Exercise 10, sublayer: the backward pass of the sublayer connection, post-norm (the paper)
and pre-norm.   Read: docs/derivations/sublayer.md

Write `backward`, then run `npformer exercise check sublayer.py`. The parts are npformer's own
layers (their backward is done); yours is the order and the residual. The forward is given;
leave it as it is.
"""

import numpy as np

from npformer.layers import Dropout, LayerNorm, Layer, Linear

EXERCISE = "sublayer"


class SublayerConnection(Layer):
    """post: y = LayerNorm(x + Dropout(Sublayer(x)));  pre: y = x + Dropout(Sublayer(LayerNorm(x))).
    The sublayer here is a Linear (D -> D)."""

    def __init__(self, d_model, dropout, position="post", rng=None):
        super().__init__("numpy", "float64")   # exercises run on NumPy, in float64
        rng = np.random.default_rng(0) if rng is None else rng
        self.position = position
        self.sublayer = Linear(d_model, d_model, rng, xp="numpy", dtype="float64")
        self.norm = LayerNorm(d_model, xp="numpy", dtype="float64")
        self.dropout = Dropout(dropout, np.random.default_rng(1), xp="numpy", dtype="float64")

    def forward(self, x, training=True):                         # x: (B,T,D)
        h = self.norm.forward(x) if self.position == "pre" else x  # (B,T,D)
        s = self.sublayer.forward(h)                             # (B,T,D)
        z = x + self.dropout.forward(s, training)                # (B,T,D)  (RES-1)
        return self.norm.forward(z) if self.position == "post" else z  # (B,T,D)  (RES-2)

    def backward(self, dout):
        """The gradient of the sublayer connection.

        Inputs: dout (B,T,D). self.norm, self.dropout and self.sublayer each have
        backward(dout) -> dx, which adds their own parameter gradients.
        Returns: dx (B,T,D): through (RES-3) the norm (post), (RES-4) the residual sum and the
        dropout, the sublayer, (RES-5) the norm (pre); x reaches y along two paths.
        Read: docs/derivations/sublayer.md
        """
        raise NotImplementedError("write SublayerConnection.backward")
