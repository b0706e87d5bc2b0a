"""Exercise 8, feedforward: the backward pass of the position-wise feed-forward network.
Read: docs/derivations/feedforward.md (and linear.md)

Write `backward`, then run `npformer exercise check feedforward.py` (add --train to train the
reverse task with it). The forward is given in its plain form; leave it as it is.
"""

import numpy as np

EXERCISE = "feedforward"


class FeedForward:
    """FFN(x) = relu(x W1 + b1) W2 + b2, the same two linears at every position."""

    def __init__(self, d_model, d_ff, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng
        self.params = {"W1": rng.standard_normal((d_model, d_ff)) / np.sqrt(d_model),  # (D,F)
                       "b1": np.zeros(d_ff),                                            # (F,)
                       "W2": rng.standard_normal((d_ff, d_model)) / np.sqrt(d_ff),      # (F,D)
                       "b2": np.zeros(d_model)}                                         # (D,)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.cache = None

    def forward(self, x):                                        # x: (B,T,D)
        p = self.params
        h = x @ p["W1"] + p["b1"]                                # (B,T,F)  (FFN-1)
        a = np.maximum(h, 0.0)                                   # (B,T,F)  (FFN-2)
        self.cache = (x, h, a)
        return a @ p["W2"] + p["b2"]                             # (B,T,D)  (FFN-3)

    def backward(self, dout):
        """The gradients of the feed-forward network.

        Inputs: dout (B,T,D); self.cache is (x, h, a).
        Adds (+=, never =) into: self.grads["W2"] (F,D), ["b2"] (D,)  (FFN-4)
                                 self.grads["W1"] (D,F), ["b1"] (F,)  (FFN-6)
        Returns: dx (B,T,D), through (FFN-4) da, (FFN-5) dh (relu), (FFN-6) dx.
        Leave dout and self.cache unchanged.   Read: docs/derivations/feedforward.md
        """
        raise NotImplementedError("write FeedForward.backward")
