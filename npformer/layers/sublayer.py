"""The sublayer connection: residual + dropout + LayerNorm.  docs: derivations/sublayer.md

post-norm (the paper):  y = LayerNorm(x + Dropout(Sublayer(x)))
pre-norm:               y = x + Dropout(Sublayer(LayerNorm(x)))

The connection does not own the sublayer; the encoder or decoder layer calls it in two halves
around its sublayer, so the code reads in the order of the figure:

    h = conn.sublayer_input(x)          # x (post) or LayerNorm(x) (pre)
    s = sublayer.forward(h, ...)
    y = conn.output(x, s)

and backward walks the same three lines in reverse:

    dx, ds = conn.backward_output(dy)
    dh = sublayer.backward(ds)
    dx = dx + conn.backward_input(dh)   # x fans out to the residual and to the sublayer
"""


class SublayerConnection:
    """Holds the LayerNorm and Dropout of one sublayer connection (owned by the calling layer)."""

    def __init__(self, norm, dropout, position="post"):
        if position not in ("post", "pre"):
            raise ValueError(f"norm must be 'post' or 'pre', got {position!r}.")
        self.norm = norm
        self.dropout = dropout
        self.position = position

    def sublayer_input(self, x):                                 # x: (B,T,D)
        return self.norm.forward(x) if self.position == "pre" else x  # (B,T,D)

    def output(self, x, s, training=True):                       # x, s: (B,T,D)
        z = x + self.dropout.forward(s, training)                # (B,T,D)  (RES-1)
        return self.norm.forward(z) if self.position == "post" else z  # (B,T,D)  (RES-2)

    def backward_output(self, dout):                             # dout: (B,T,D)
        """Returns (the gradient reaching x along the residual, the gradient of s)."""
        dz = self.norm.backward(dout) if self.position == "post" else dout  # (B,T,D)  (RES-3)
        return dz, self.dropout.backward(dz)                     # (B,T,D) twice  fwd: z = x + drop(s)  (RES-4)

    def backward_input(self, dh):                                # dh: (B,T,D)
        """The gradient reaching x through the sublayer's input."""
        return self.norm.backward(dh) if self.position == "pre" else dh  # (B,T,D)  (RES-5)
