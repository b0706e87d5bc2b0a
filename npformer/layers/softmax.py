"""Softmax over the last axis, optionally masked.  docs: derivations/softmax.md"""

from npformer.backend import get_xp
from npformer.layers.base import Layer

# Scores of masked entries are replaced by this finite constant before the row max is taken.
# exp(MASK_FILL - max) underflows to exactly 0 in float32 and float64. It is finite on purpose:
# with -inf, a row masked everywhere would compute -inf - (-inf) = NaN.
MASK_FILL = -1e9


def softmax(x, keep=None):
    """y = exp(x - max) / sum(exp(x - max)) along the last axis.

    keep: boolean, broadcastable to x; False entries get probability exactly 0, and a row with
    no True entry gives all zeros instead of NaN.
    """
    xp = get_xp(x)
    # One fresh array, then every step in place on it: in attention x is the (B,H,T,S) scores,
    # the largest array of the layer, and each extra temporary is another pass over memory.
    z = xp.where(keep, x, MASK_FILL) if keep is not None else x.copy()  # (...,N)
    z -= z.max(axis=-1, keepdims=True)                           # (...,N)  max subtracted: exp never overflows
    e = xp.exp(z, out=z)                                         # (...,N)
    if keep is not None:
        e *= keep                                                # a row masked everywhere has z = 0, e = 1: re-zero it
    # the row sums as an einsum: NumPy's e.sum(axis=-1) is 2-8x slower on short rows (17 to 129 keys)
    s = xp.einsum("...n->...", e)[..., None]                     # (...,1)  0 only for a row masked everywhere
    e /= xp.maximum(s, e.dtype.type(1e-30))                      # (...,N)  (SM-1)
    return e


def softmax_backward(dy, y):
    """dx = y * (dy - sum(dy * y)): the Jacobian-vector product, without forming the Jacobian.

    Masked entries have y = 0, so they get exactly zero gradient.
    """
    xp = get_xp(y)
    # sum(dy * y) of each row as an einsum: the row dot products without a temporary dy * y
    dot = xp.einsum("...n,...n->...", dy, y)[..., None]          # (...,1)  (SM-2)
    dx = dy - dot                                                # (...,N)  (SM-2)
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
