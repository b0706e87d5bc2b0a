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
    if keep is not None:
        x = xp.where(keep, x, MASK_FILL)                         # (...,N)
    z = x - x.max(axis=-1, keepdims=True)                        # (...,N)  max subtracted: exp never overflows
    e = xp.exp(z)                                                # (...,N)
    if keep is not None:
        e *= keep                                                # a row masked everywhere has z = 0, e = 1: re-zero it
    s = e.sum(axis=-1, keepdims=True)                            # (...,1)  0 only for a row masked everywhere
    return e / xp.maximum(s, e.dtype.type(1e-30))                # (...,N)  (SM-1)


def softmax_backward(dy, y):
    """dx = y * (dy - sum(dy * y)): the Jacobian-vector product, without forming the Jacobian.

    Masked entries have y = 0, so they get exactly zero gradient.
    """
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))       # (...,N)  (SM-2)


class Softmax(Layer):
    """Layer form of `softmax`: keeps its output y, which is all backward needs.

    Inputs: x (..., N), keep (broadcastable, optional).  Returns: y (..., N).
    """

    def forward(self, x, keep=None):
        self.cache = softmax(x, keep)
        return self.cache

    def backward(self, dout):
        return softmax_backward(dout, self.cache)
