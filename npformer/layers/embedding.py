"""Embedding: row lookup y = W[ids], gradient by scatter-add.  docs: derivations/embedding.md"""

import numpy as np

from npformer.backend import get_xp, to_device, to_numpy
from npformer.errors import InputError
from npformer.layers.base import Layer


class TokenError(InputError):
    """Token ids that are not integers or fall outside the vocabulary."""


def check_ids(ids, vocab, what="token ids"):
    """Reject non-integer or out-of-range ids, on the host.

    CuPy wraps an out-of-range index silently instead of raising, so this check cannot be
    left to the lookup itself. Returns the ids as a host NumPy array.
    """
    try:
        host = to_numpy(ids)
    except ValueError:                                           # NumPy refuses ragged nested lists
        raise TokenError(f"{what} must be a rectangular batch (B, length) of integers; "
                         "pad the rows to one length.") from None
    if host.size and not np.issubdtype(host.dtype, np.integer):
        raise TokenError(f"{what} must be integers, got dtype {host.dtype}.")
    if host.size and (host.min() < 0 or host.max() >= vocab):
        bad = host[(host < 0) | (host >= vocab)][0]
        raise TokenError(f"{what} contain {int(bad)}, outside the vocabulary 0..{vocab - 1}.")
    return host


class Embedding(Layer):
    """y = W[ids]: one row of W per token.

    Inputs: ids (B, T) integers in [0, V).  Returns: y (B, T, D).
    Parameters: W (V, D), drawn from N(0, 1/D) so that sqrt(D) * W has unit variance.
    """

    def __init__(self, vocab, d_model, rng, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        self.vocab = vocab
        self.add_param("W", rng.normal(0.0, d_model ** -0.5, size=(vocab, d_model)))  # (V,D)

    def forward(self, ids, checked=False):                       # ids: (B,T)
        """checked=True: the caller already ran check_ids on these device ids (the model does, at
        its boundary), so the host round trip, a device sync on a GPU, is skipped."""
        if get_xp(ids) is not self.xp or not hasattr(ids, "dtype"):
            ids = to_device(check_ids(ids, self.vocab), self.xp)  # host ids cross here, checked
        elif not checked:
            check_ids(ids, self.vocab)
        self.cache = ids
        return self.params["W"][ids]                             # (B,T,D)  (EMB-1)

    def backward(self, dout):                                    # dout: (B,T,D)
        xp, ids = self.xp, self.cache
        D = dout.shape[-1]
        # A token that occurs k times receives the sum of its k row gradients. `dW[ids] += dout`
        # would keep only one of them (buffered assignment), so scatter-add with add.at. It runs
        # on flat element indices, ids * D + column, into the flat (V*D,) view of dW: NumPy's
        # add.at has a fast loop for one 1-D index array into a 1-D array, 3-4x faster than
        # adding (B*T, D) rows by row index, and the sums come out identical.
        flat = (ids.reshape(-1, 1) * D + xp.arange(D)).reshape(-1)  # (B*T*D,)  position of each dout element in dW
        dW = self.grads["W"].reshape(-1)                         # (V*D,)  a view: dW is contiguous
        xp.add.at(dW, flat, dout.reshape(-1))                    # (V*D,)  (EMB-2)
        return None                                              # ids are integers: no gradient
