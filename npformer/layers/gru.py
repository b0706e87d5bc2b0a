"""The gated recurrent unit (Cho et al. 2014), with backpropagation through time.
docs: derivations/gru.md

One step, for input x_t (B,I) and previous state h (B,Hd):

    z  = sigmoid(x_t W_z + h U_z + b_z)           update gate
    r  = sigmoid(x_t W_r + h U_r + b_r)           reset gate
    n  = tanh(x_t W_n + (r * h) U_n + b_n)        candidate state
    h' = (1 - z) * n + z * h

(the reset gate multiplies h before U_n, as in the original paper; PyTorch applies it after).
The three input weights sit side by side in W (I, 3Hd), the recurrent ones in U (Hd, 3Hd),
the biases in b (3Hd,), in the column order [z | r | n].

Padding: with a keep mask m_t (B,) a padded step leaves the state unchanged,
h_t = m_t h' + (1 - m_t) h_{t-1}, so after a right-padded sequence the last state is the state
at its last real token, and padding changes neither outputs nor gradients of real steps.
"""

import numpy as np

from npformer.layers.base import Layer
from npformer.layers.linear import glorot


def sigmoid(x, xp):
    """1 / (1 + exp(-x)), written through tanh so that no exp overflows for large |x|."""
    return 0.5 * (1.0 + xp.tanh(0.5 * x))


class GRU(Layer):
    """A single-layer GRU over a padded batch.

    forward(x (B,T,I), h0 (B,Hd) or None, keep (B,T) bool or None) -> states (B,T,Hd).
    backward(dstates (B,T,Hd)) -> (dx (B,T,I), dh0 (B,Hd)).
    The final state is states[:, -1]: with right padding carried through it is the state at
    each row's last real token, and its gradient is simply added into dstates[:, -1].

    step / step_backward run one time step, for callers that interleave the recurrence with
    something else (the attention decoder); the caller keeps each step's cache.
    Parameters: W (I, 3Hd), U (Hd, 3Hd), b (3Hd,).
    """

    def __init__(self, d_in, d_hidden, rng, xp=None, dtype="float32"):
        super().__init__(xp, dtype)
        self.d_hidden = d_hidden
        self.add_param("W", np.concatenate([glorot(rng, d_in, d_hidden) for _ in range(3)], axis=1))  # (I,3Hd)
        self.add_param("U", np.concatenate([glorot(rng, d_hidden, d_hidden) for _ in range(3)], axis=1))  # (Hd,3Hd)
        self.add_param("b", np.zeros(3 * d_hidden))              # (3Hd,)

    # ------------------------------------------------------------------ one step

    def step(self, x, h, keep=None):
        """x (B,I), h (B,Hd), keep (B,) bool or None -> (h_new (B,Hd), cache)."""
        xp, p, Hd = self.xp, self.params, self.d_hidden
        gx = x @ p["W"] + p["b"]                                 # (B,3Hd)  all three input terms at once
        gh = h @ p["U"][:, :2 * Hd]                              # (B,2Hd)  recurrent terms of z and r
        z = sigmoid(gx[:, :Hd] + gh[:, :Hd], xp)                 # (B,Hd)  (GRU-1)
        r = sigmoid(gx[:, Hd:2 * Hd] + gh[:, Hd:], xp)           # (B,Hd)  (GRU-2)
        rh = r * h                                               # (B,Hd)
        n = xp.tanh(gx[:, 2 * Hd:] + rh @ p["U"][:, 2 * Hd:])    # (B,Hd)  (GRU-3)
        h_new = (1.0 - z) * n + z * h                            # (B,Hd)  (GRU-4)
        m = None
        if keep is not None:
            m = keep[:, None].astype(h.dtype)                    # (B,1)  1 = real step, 0 = padding
            h_new = m * h_new + (1.0 - m) * h                    # (B,Hd)  padding carries h through  (GRU-5)
        return h_new, (x, h, z, r, rh, n, m)

    def step_backward(self, dh_new, cache):
        """dh_new (B,Hd) -> (dx (B,I), dh (B,Hd)); parameter gradients are added."""
        x, h, z, r, rh, n, m = cache
        p, g, Hd = self.params, self.grads, self.d_hidden
        dh = 0.0
        if m is not None:
            dh = (1.0 - m) * dh_new                              # (B,Hd)  the carried path  (GRU-6)
            dh_new = m * dh_new                                  # (B,Hd)  the GRU path  (GRU-6)
        dn = dh_new * (1.0 - z)                                  # (B,Hd)  fwd: h' = (1-z) n + z h  (GRU-7)
        dz = dh_new * (h - n)                                    # (B,Hd)  (GRU-7)
        dh = dh + dh_new * z                                     # (B,Hd)  (GRU-7)
        dan = dn * (1.0 - n * n)                                 # (B,Hd)  tanh' = 1 - n^2  (GRU-8)
        drh = dan @ p["U"][:, 2 * Hd:].T                         # (B,Hd)  fwd: (r h) U_n  (GRU-9)
        g["U"][:, 2 * Hd:] += rh.T @ dan                         # (Hd,Hd)  (GRU-9)
        dr = drh * h                                             # (B,Hd)  fwd: rh = r * h  (GRU-10)
        dh = dh + drh * r                                        # (B,Hd)  (GRU-10)
        daz = dz * z * (1.0 - z)                                 # (B,Hd)  sigmoid' = s (1 - s)  (GRU-11)
        dar = dr * r * (1.0 - r)                                 # (B,Hd)  (GRU-11)
        dgh = self.xp.concatenate([daz, dar], axis=1)            # (B,2Hd)  pre-activations of z, r
        g["U"][:, :2 * Hd] += h.T @ dgh                          # (Hd,2Hd)  (GRU-12)
        dh = dh + dgh @ p["U"][:, :2 * Hd].T                     # (B,Hd)  (GRU-12)
        dgx = self.xp.concatenate([daz, dar, dan], axis=1)       # (B,3Hd)  pre-activations, input side
        g["W"] += x.T @ dgx                                      # (I,3Hd)  (GRU-13)
        g["b"] += dgx.sum(axis=0)                                # (3Hd,)  (GRU-13)
        return dgx @ p["W"].T, dh                                # (B,I), (B,Hd)  (GRU-13)

    # ------------------------------------------------------------------ a whole sequence

    def forward(self, x, h0=None, keep=None):                    # x: (B,T,I)
        xp = self.xp
        B, T, _ = x.shape
        h = xp.zeros((B, self.d_hidden), dtype=x.dtype) if h0 is None else h0  # (B,Hd)
        states, caches = [], []
        for t in range(T):                                       # sequential: h_t needs h_{t-1}
            h, cache = self.step(x[:, t], h, None if keep is None else keep[:, t])  # (B,Hd)
            states.append(h)
            caches.append(cache)
        self.cache = caches
        return xp.stack(states, axis=1)                          # (B,T,Hd)

    def backward(self, dout):                                    # dout: (B,T,Hd)
        """Backpropagation through time: step T-1 first, carrying dh to the step before."""
        caches = self.cache
        dh = self.xp.zeros_like(dout[:, 0])                      # (B,Hd)  nothing after the last step
        dxs = [None] * len(caches)
        for t in reversed(range(len(caches))):
            # h_t feeds the output at t and the step t+1: the two gradients are summed
            dxs[t], dh = self.step_backward(dout[:, t] + dh, caches[t])  # (B,I), (B,Hd)  (GRU-14)
        return self.xp.stack(dxs, axis=1), dh                    # (B,T,I), (B,Hd)
