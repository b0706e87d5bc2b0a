"""Exercise 12, gru: the backward pass of one GRU step, then backpropagation through time over
a padded sequence.   Read: docs/derivations/gru.md

Write `step_backward` and `backward`, then run `npformer exercise check gru.py`. The forward is
given in its plain form; leave it as it is: the checker differentiates it numerically.
"""

import numpy as np

EXERCISE = "gru"


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


class GRU:
    """One step: z = sigmoid(x W_z + h U_z + b_z), r = sigmoid(x W_r + h U_r + b_r),
    n = tanh(x W_n + (r * h) U_n + b_n), h' = (1 - z) * n + z * h; a padded step keeps h.
    W (I,3Hd), U (Hd,3Hd) and b (3Hd,) hold the z, r and n blocks side by side."""

    def __init__(self, d_in, d_hidden, rng=None):
        rng = np.random.default_rng(0) if rng is None else rng
        self.d_hidden = d_hidden
        self.params = {"W": rng.standard_normal((d_in, 3 * d_hidden)) / np.sqrt(d_in),          # (I,3Hd)
                       "U": rng.standard_normal((d_hidden, 3 * d_hidden)) / np.sqrt(d_hidden),  # (Hd,3Hd)
                       "b": np.zeros(3 * d_hidden)}                                             # (3Hd,)
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.cache = None

    def step(self, x, h, keep=None):                             # x: (B,I), h: (B,Hd), keep: (B,) bool
        W, U, b, Hd = self.params["W"], self.params["U"], self.params["b"], self.d_hidden
        z = sigmoid(x @ W[:, :Hd] + h @ U[:, :Hd] + b[:Hd])     # (B,Hd)  (GRU-1)
        r = sigmoid(x @ W[:, Hd:2 * Hd] + h @ U[:, Hd:2 * Hd] + b[Hd:2 * Hd])  # (B,Hd)  (GRU-2)
        rh = r * h                                               # (B,Hd)
        n = np.tanh(x @ W[:, 2 * Hd:] + rh @ U[:, 2 * Hd:] + b[2 * Hd:])  # (B,Hd)  (GRU-3)
        h_new = (1.0 - z) * n + z * h                            # (B,Hd)  (GRU-4)
        m = None
        if keep is not None:
            m = keep[:, None].astype(h.dtype)                    # (B,1)  1 = real step, 0 = padding
            h_new = m * h_new + (1.0 - m) * h                    # (B,Hd)  (GRU-5)
        return h_new, (x, h, z, r, rh, n, m)

    def forward(self, x, h0=None, keep=None):                    # x: (B,T,I), keep: (B,T) bool
        B, T, _ = x.shape
        h = np.zeros((B, self.d_hidden)) if h0 is None else h0   # (B,Hd)
        states, caches = [], []
        for t in range(T):
            h, cache = self.step(x[:, t], h, None if keep is None else keep[:, t])  # (B,Hd)
            states.append(h)
            caches.append(cache)
        self.cache = caches
        return np.stack(states, axis=1)                          # (B,T,Hd)

    def step_backward(self, dh_new, cache):
        """The gradients of one step.

        Inputs: dh_new (B,Hd), the gradient of h'; cache, the one step() returned:
        (x, h, z, r, rh, n, m), m the (B,1) keep mask or None.
        Adds (+=, never =) into self.grads: W (I,3Hd), U (Hd,3Hd), b (3Hd,), each in its
        z, r, n column blocks  (GRU-9, GRU-12, GRU-13).
        Returns: (dx (B,I), dh (B,Hd)), through (GRU-6) the padding, (GRU-7) h', (GRU-8) tanh,
        (GRU-9) U_n, (GRU-10) r * h, (GRU-11) the sigmoids, (GRU-12) U_z U_r, (GRU-13) W, b.
        Leave dh_new and the cache unchanged.   Read: docs/derivations/gru.md
        """
        raise NotImplementedError("write GRU.step_backward")

    def backward(self, dout):
        """Backpropagation through time.

        Inputs: dout (B,T,Hd), the gradient of every state; self.cache is the list of the
        steps' caches. Each h_t feeds the output at t and the step t+1  (GRU-14).
        Returns: (dx (B,T,I), dh0 (B,Hd)).   Read: docs/derivations/gru.md
        """
        raise NotImplementedError("write GRU.backward")
