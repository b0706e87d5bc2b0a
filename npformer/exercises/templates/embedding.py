"""Exercise 6, embedding: the backward pass of a row lookup, with repeated token ids.
Read: docs/derivations/embedding.md

Write `backward`, then run `npformer exercise check embedding.py` (add --train to train the
reverse task with it). The forward is given in its plain form; leave it as it is.
"""

import numpy as np

EXERCISE = "embedding"


class Embedding:
    """y = W[ids]: one row of W per token."""

    def __init__(self, vocab, d_model, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng
        self.params = {"W": rng.normal(0.0, d_model ** -0.5, size=(vocab, d_model))}  # (V,D)
        self.grads = {"W": np.zeros((vocab, d_model))}          # (V,D)
        self.cache = None

    def forward(self, ids):                                      # ids: (B,T) integers in [0, V)
        self.cache = ids
        return self.params["W"][ids]                             # (B,T,D)  (EMB-1)

    def backward(self, dout):
        """The gradient of y = W[ids].

        Inputs: dout (B,T,D); self.cache is ids. A token id may occur more than once.
        Adds (+=, never =) into: self.grads["W"] (V,D)  (EMB-2)
        Returns: None (ids are integers: they have no gradient).
        Leave dout and self.cache unchanged.   Read: docs/derivations/embedding.md
        """
        raise NotImplementedError("write Embedding.backward")
