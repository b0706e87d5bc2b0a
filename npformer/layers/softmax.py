"""Softmax over the last axis, optionally masked.  docs: derivations/softmax.md"""

from npformer.backend import get_xp
from npformer.layers.base import Layer

# Scores of masked entries are replaced by this finite constant before the row max is taken.
# exp(MASK_FILL - max) underflows to exactly 0 in float32 and float64. It is finite on purpose:
# with -inf, a row masked everywhere would compute -inf - (-inf) = NaN.
MASK_FILL = -1e9


def softmax(x, keep=None, out=None):
    """y = exp(x - max) / sum(exp(x - max)) along the last axis.

    keep: boolean, broadcastable to x; False entries get probability exactly 0, and a row with
    no True entry gives all zeros instead of NaN. out: the array to build y in; pass x itself
    when x is a fresh array of the caller's (attention's scores), to save a copy.
    """
    xp = get_xp(x)
    # One array, every step in place on it: in attention x is the (B,H,T,S) scores, the
    # largest array of the layer, and each extra temporary is another pass over memory.
    z = x.copy() if out is None else out                         # (...,N)
    if out is not None and out is not x:
        z[...] = x
    if keep is not None:
        # only where keep is False, and keep is small ((B,1,1,S) or (1,1,T,T)): ~keep costs little
        xp.copyto(z, MASK_FILL, where=~keep)                     # (...,N)
    z -= z.max(axis=-1, keepdims=True)                           # (...,N)  max subtracted: exp never overflows
    e = xp.exp(z, out=z)                                         # (...,N)  masked entries: exp(MASK_FILL - max) = 0
    # the row sums as an einsum: NumPy's e.sum(axis=-1) is 2-8x slower on short rows (17 to 129 keys)
    s = xp.einsum("...n->...", e)[..., None]                     # (...,1)
    if keep is None:
        e *= 1 / s                                               # (...,N)  (SM-1)
        return e
    # A row masked everywhere has z = 0 and e = 1 throughout: its factor is 0, which zeroes it.
    # Every other row is divided by its sum, >= 1. One multiply does both.
    has_key = keep.any(axis=-1, keepdims=True)                   # (...,1)  broadcastable, like keep
    e *= has_key / s                                             # (...,N)  (SM-1)
    return e


def softmax_backward(dy, y, out=None):
    """dx = y * (dy - sum(dy * y)): the Jacobian-vector product, without forming the Jacobian.

    Masked entries have y = 0, so they get exactly zero gradient. out: the array to build dx
    in; pass dy itself when dy is a fresh array of the caller's (attention's dA).
    """
    xp = get_xp(y)
    # sum(dy * y) of each row as an einsum: the row dot products without a temporary dy * y
    dot = xp.einsum("...n,...n->...", dy, y)[..., None]          # (...,1)  (SM-2)
    dx = xp.subtract(dy, dot, out=out)                           # (...,N)  (SM-2)
    dx *= y                                                      # (...,N)  (SM-2)
    return dx


class Softmax(Layer):
    """Layer form of `softmax`: keeps its output y, which is all backward needs.

    Inputs: x (..., N), keep (broadcastable, optional).  Returns: y (..., N).
    """

    def forward(self, x, keep=None):
        self.cache = softmax(x, keep)
        return self.cache

    def backward(self, dout):
        return softmax_backward(dout, self.cache)
