"""Exercise 11, encoder_layer: the backward pass of one encoder layer: self-attention and
feed-forward, each inside a sublayer connection.   Read: docs/derivations/stacks.md

Write `backward`, then run `npformer exercise check encoder_layer.py`. The parts are npformer's
own layers (their backward is done); yours is the order and the residual paths. The forward is
given; leave it as it is.
"""

import numpy as np

from npformer.layers import Dropout, FeedForward, Layer, LayerNorm, MultiHeadAttention

EXERCISE = "encoder_layer"


class EncoderLayer(Layer):
    """x -> x + Dropout(SelfAttention(x)) -> LayerNorm -> + Dropout(FFN) -> LayerNorm (post-norm);
    with norm="pre" each LayerNorm moves to the sublayer's input."""

    def __init__(self, d_model, n_heads, d_ff, dropout, norm="post", rng=None):
        super().__init__("numpy", "float64")   # exercises run on NumPy, in float64
        rng = np.random.default_rng(0) if rng is None else rng
        drop_rng = np.random.default_rng(1)
        self.norm_position = norm
        self.self_attn = MultiHeadAttention(d_model, n_heads, rng, xp="numpy", dtype="float64")
        self.norm1 = LayerNorm(d_model, xp="numpy", dtype="float64")
        self.drop1 = Dropout(dropout, drop_rng, xp="numpy", dtype="float64")
        self.ffn = FeedForward(d_model, d_ff, rng, xp="numpy", dtype="float64")
        self.norm2 = LayerNorm(d_model, xp="numpy", dtype="float64")
        self.drop2 = Dropout(dropout, drop_rng, xp="numpy", dtype="float64")

    def forward(self, x, keep, training=True):                   # x: (B,S,D), keep: (B,1,1,S)
        pre = self.norm_position == "pre"
        h = self.norm1.forward(x) if pre else x                  # (B,S,D)
        z = x + self.drop1.forward(self.self_attn.forward(h, keep), training)  # (B,S,D)  (RES-1)
        x = z if pre else self.norm1.forward(z)                  # (B,S,D)  (RES-2)
        h = self.norm2.forward(x) if pre else x                  # (B,S,D)
        z = x + self.drop2.forward(self.ffn.forward(h), training)  # (B,S,D)  (RES-1)
        return z if pre else self.norm2.forward(z)               # (B,S,D)  (RES-2)

    def backward(self, dout):
        """The gradient of one encoder layer.

        Inputs: dout (B,S,D). Every part has backward(dout) -> dx (self_attn's returns one dx,
        its three paths summed), which adds its own parameter gradients.
        Returns: dx (B,S,D): the two sublayer connections in reverse order (ENC-1), each as in
        the sublayer exercise (RES-3)..(RES-5), the residual gradient added to the sublayer's.
        Read: docs/derivations/stacks.md
        """
        raise NotImplementedError("write EncoderLayer.backward")
