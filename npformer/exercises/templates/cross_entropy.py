"""Exercise 3, cross_entropy: the gradient of the cross-entropy loss with label smoothing and
padding, with respect to the logits.   Read: docs/derivations/crossentropy.md

Write `backward`, then run `npformer exercise check cross_entropy.py`. The forward is given in
its plain form; leave it as it is: the checker differentiates it numerically.
"""

import numpy as np

EXERCISE = "cross_entropy"


class CrossEntropy:
    """loss = -(1/N) sum over the N non-pad tokens of sum_v q_v log p_v, p = softmax(logits),
    q = (1 - eps) onehot(target) + eps / V."""

    def __init__(self, pad_id=0, label_smoothing=0.0):
        self.pad_id, self.label_smoothing = pad_id, label_smoothing
        self.params, self.grads = {}, {}
        self.cache = None

    def forward(self, logits, targets):                          # logits: (B,T,V), targets: (B,T) ints
        B, T, V = logits.shape
        eps = self.label_smoothing
        z = logits - logits.max(axis=-1, keepdims=True)          # (B,T,V)  no overflow in exp
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (B,T,V)  (CE-1)
        q = np.full((B, T, V), eps / V)                          # (B,T,V)  the smoothed target
        q[np.arange(B)[:, None], np.arange(T)[None, :], targets] += 1.0 - eps
        valid = targets != self.pad_id                           # (B,T)  padding is not a token
        n = valid.sum()                                          # N
        loss = -(q * logp).sum(axis=-1)[valid].sum() / n         # ()  (CE-2)
        self.cache = (logp, q, valid, n)
        return loss

    def backward(self, dout=1.0):
        """The gradient of the loss with respect to the logits.

        Inputs: dout, a number: the gradient of the final objective with respect to this loss
        (1.0 when the loss is the objective); self.cache is (logp, q, valid, n).
        Returns: dlogits (B,T,V)  (CE-3), 0 at padded positions.
        Leave self.cache unchanged.   Read: docs/derivations/crossentropy.md
        """
        raise NotImplementedError("write CrossEntropy.backward")
