"""Exercise 2, softmax: the backward pass of a softmax over the last axis, plain and then with
a mask (a row masked everywhere included).   Read: docs/derivations/softmax.md

Write `backward`, then run `npformer exercise check softmax.py`. The forward is given in its
plain form; leave it as it is: the checker differentiates it numerically.
"""

import numpy as np

EXERCISE = "softmax"
MASK_FILL = -1e9        # masked scores become this finite number: -inf would make a fully masked row NaN


def softmax(x, keep=None):
    """The plain forward, also the one attention and multi-head attention use."""
    if keep is not None:
        x = np.where(keep, x, MASK_FILL)                         # (...,N)
    e = np.exp(x - x.max(axis=-1, keepdims=True))                # (...,N)  the row max subtracted: no overflow
    if keep is not None:
        e = e * keep                                             # (...,N)  a fully masked row: all 0
    s = e.sum(axis=-1, keepdims=True)                            # (...,1)
    return e / np.where(s > 0, s, 1.0)                           # (...,N)  (SM-1)  0 / 1, not 0 / 0


class Softmax:
    """y = exp(x - max) / sum(exp(x - max)) along the last axis; masked entries get y = 0."""

    def __init__(self):
        self.params, self.grads = {}, {}
        self.cache = None

    def forward(self, x, keep=None):                             # x: (...,N), keep: bool, broadcastable
        self.cache = softmax(x, keep)                            # (...,N)  backward needs only y
        return self.cache

    def backward(self, dout):
        """The gradient of y = softmax(x).

        Inputs: dout (...,N), the gradient of the loss with respect to y; self.cache is y.
        Returns: dx (...,N)  (SM-2). Masked entries and fully masked rows must get exactly 0.
        Leave dout and self.cache unchanged.   Read: docs/derivations/softmax.md
        """
        raise NotImplementedError("write Softmax.backward")
