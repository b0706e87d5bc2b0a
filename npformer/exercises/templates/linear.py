"""Exercise 1, linear: the backward pass of y = x W + b.   Read: docs/derivations/linear.md

Write `backward`, then run `npformer exercise check linear.py`. The forward is given in its
plain form; leave it as it is: the checker differentiates it numerically.
"""

import numpy as np

EXERCISE = "linear"


class Linear:
    """y = x W + b over the last axis, with W of shape (in, out)."""

    def __init__(self, d_in, d_out, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng
        self.params = {"W": rng.standard_normal((d_in, d_out)) / np.sqrt(d_in),  # (in,out)
                       "b": np.zeros(d_out)}                                     # (out,)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.cache = None

    def forward(self, x):                                        # x: (B,T,in)
        self.cache = x
        return x @ self.params["W"] + self.params["b"]          # (B,T,out)  (LIN-1)

    def backward(self, dout):
        """The gradients of y = x W + b.

        Inputs: dout (B,T,out), the gradient of the loss with respect to y; self.cache is x.
        Adds (+=, never =) into: self.grads["W"] (in,out)  (LIN-2)
                                 self.grads["b"] (out,)    (LIN-3)
        Returns: dx (B,T,in)  (LIN-4)
        Leave dout and self.cache unchanged.   Read: docs/derivations/linear.md
        """
        raise NotImplementedError("write Linear.backward")
