"""The decoder: N layers of masked self-attention, cross-attention and feed-forward.
docs: derivations/stacks.md"""

from npformer.layers import Dropout, FeedForward, Layer, LayerNorm, MultiHeadAttention, SublayerConnection


class DecoderLayer(Layer):
    """y -> masked self-attention -> cross-attention over the encoder output -> feed-forward,
    each inside a sublayer connection.

    Inputs: y (B,T,D), memory (B,S,D) the encoder output, tgt_keep (B,1,T,T) causal and padding,
    src_keep (B,1,1,S).  Returns (B,T,D). backward returns (dy, dmemory).
    """

    def __init__(self, d_model, n_heads, d_ff, dropout, rng, drop_rng, norm="post",
                 activation="relu", xp=None, dtype="float32", score="scaled_dot"):
        super().__init__(xp, dtype)
        self.self_attn = MultiHeadAttention(d_model, n_heads, rng, xp, dtype, score)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, rng, xp, dtype, score)
        self.ffn = FeedForward(d_model, d_ff, rng, activation, xp, dtype)
        self.norm1 = LayerNorm(d_model, xp=xp, dtype=dtype)
        self.norm2 = LayerNorm(d_model, xp=xp, dtype=dtype)
        self.norm3 = LayerNorm(d_model, xp=xp, dtype=dtype)
        self.drop1 = Dropout(dropout, drop_rng, xp, dtype)
        self.drop2 = Dropout(dropout, drop_rng, xp, dtype)
        self.drop3 = Dropout(dropout, drop_rng, xp, dtype)
        self._sub1 = SublayerConnection(self.norm1, self.drop1, norm)
        self._sub2 = SublayerConnection(self.norm2, self.drop2, norm)
        self._sub3 = SublayerConnection(self.norm3, self.drop3, norm)

    def forward(self, y, memory, tgt_keep, src_keep, training=True, cache=None):
        """cache: a dict kept across decoding steps (inference only), see MultiHeadAttention."""
        self_cache = cross_cache = None
        if cache is not None:
            self_cache, cross_cache = cache.setdefault("self", {}), cache.setdefault("cross", {})
        h = self._sub1.sublayer_input(y)                         # (B,T,D)
        y = self._sub1.output(y, self.self_attn.forward(h, tgt_keep, kv_cache=self_cache), training)
        h = self._sub2.sublayer_input(y)                         # (B,T,D)
        y = self._sub2.output(y, self.cross_attn.forward(h, src_keep, memory=memory,
                                                         kv_cache=cross_cache), training)
        h = self._sub3.sublayer_input(y)                         # (B,T,D)
        return self._sub3.output(y, self.ffn.forward(h), training)  # (B,T,D)

    def backward(self, dout):                                    # dout: (B,T,D)
        dy, ds = self._sub3.backward_output(dout)
        dy = dy + self._sub3.backward_input(self.ffn.backward(ds))  # (B,T,D)  (DEC-1)
        dy2, ds = self._sub2.backward_output(dy)
        dh, dmemory = self.cross_attn.backward(ds)               # (B,T,D), (B,S,D)
        dy = dy2 + self._sub2.backward_input(dh)                 # (B,T,D)  (DEC-1)
        dy3, ds = self._sub1.backward_output(dy)
        dy = dy3 + self._sub1.backward_input(self.self_attn.backward(ds))  # (B,T,D)  (DEC-1)
        return dy, dmemory


class Decoder(Layer):
    """N decoder layers, each reading the same encoder output; with pre-norm a final LayerNorm."""

    def __init__(self, n_layers, d_model, n_heads, d_ff, dropout, rng, drop_rng, norm="post",
                 activation="relu", xp=None, dtype="float32", score="scaled_dot"):
        super().__init__(xp, dtype)
        self.layers = [DecoderLayer(d_model, n_heads, d_ff, dropout, rng, drop_rng, norm,
                                    activation, xp, dtype, score) for _ in range(n_layers)]
        if norm == "pre":
            self.norm = LayerNorm(d_model, xp=xp, dtype=dtype)

    def forward(self, y, memory, tgt_keep, src_keep, training=True, caches=None):
        for i, layer in enumerate(self.layers):
            y = layer.forward(y, memory, tgt_keep, src_keep, training,
                              None if caches is None else caches[i])  # (B,T,D)
        return self.norm.forward(y) if hasattr(self, "norm") else y  # (B,T,D)

    def backward(self, dout):                                    # dout: (B,T,D)
        """Returns (dy, dmemory); every layer read the memory, so its gradient is their sum."""
        if hasattr(self, "norm"):
            dout = self.norm.backward(dout)
        dmemory = 0
        for layer in reversed(self.layers):
            dout, dm = layer.backward(dout)                      # (B,T,D), (B,S,D)
            dmemory = dmemory + dm                               # (B,S,D)  memory fanned out to N layers  (DEC-2)
        return dout, dmemory
