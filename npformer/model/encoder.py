"""The encoder: N identical layers of self-attention and feed-forward.  docs: derivations/stacks.md"""

from npformer.layers import Dropout, FeedForward, Layer, LayerNorm, MultiHeadAttention, SublayerConnection


class EncoderLayer(Layer):
    """x -> SublayerConnection(self-attention) -> SublayerConnection(feed-forward).

    Inputs: x (B,S,D), src_keep (B,1,1,S) True where the key is a real token.  Returns (B,S,D).
    """

    def __init__(self, d_model, n_heads, d_ff, dropout, rng, drop_rng, norm="post",
                 activation="relu", xp=None, dtype="float32", score="scaled_dot"):
        super().__init__(xp, dtype)
        self.self_attn = MultiHeadAttention(d_model, n_heads, rng, xp, dtype, score)
        self.norm1 = LayerNorm(d_model, xp=xp, dtype=dtype)
        self.drop1 = Dropout(dropout, drop_rng, xp, dtype)
        self.ffn = FeedForward(d_model, d_ff, rng, activation, xp, dtype)
        self.norm2 = LayerNorm(d_model, xp=xp, dtype=dtype)
        self.drop2 = Dropout(dropout, drop_rng, xp, dtype)
        self._sub1 = SublayerConnection(self.norm1, self.drop1, norm)
        self._sub2 = SublayerConnection(self.norm2, self.drop2, norm)

    def forward(self, x, src_keep, training=True):               # x: (B,S,D)
        h = self._sub1.sublayer_input(x)                         # (B,S,D)
        x = self._sub1.output(x, self.self_attn.forward(h, src_keep), training)  # (B,S,D)
        h = self._sub2.sublayer_input(x)                         # (B,S,D)
        return self._sub2.output(x, self.ffn.forward(h), training)  # (B,S,D)

    def backward(self, dout):                                    # dout: (B,S,D)
        dx, ds = self._sub2.backward_output(dout)                # (B,S,D)
        dx = dx + self._sub2.backward_input(self.ffn.backward(ds))  # residual + FFN path  (ENC-1)
        dx1, ds = self._sub1.backward_output(dx)                 # (B,S,D)
        return dx1 + self._sub1.backward_input(self.self_attn.backward(ds))  # (B,S,D)  (ENC-1)


class Encoder(Layer):
    """N encoder layers; with pre-norm a final LayerNorm (`norm`), since the last residual sum
    would otherwise leave the stack un-normalised."""

    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout, rng, drop_rng, norm="post",
                 activation="relu", xp=None, dtype="float32", score="scaled_dot"):
        super().__init__(xp, dtype)
        self.layers = [EncoderLayer(d_model, n_heads, d_ff, dropout, rng, drop_rng, norm,
                                    activation, xp, dtype, score) for _ in range(n_layers)]
        if norm == "pre":
            self.norm = LayerNorm(d_model, xp=xp, dtype=dtype)

    def forward(self, x, src_keep, training=True):               # x: (B,S,D)
        for layer in self.layers:
            x = layer.forward(x, src_keep, training)             # (B,S,D)
        return self.norm.forward(x) if hasattr(self, "norm") else x  # (B,S,D)

    def backward(self, dout):                                    # dout: (B,S,D)
        if hasattr(self, "norm"):
            dout = self.norm.backward(dout)                      # (B,S,D)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)                          # (B,S,D)  (ENC-2)
        return dout
