"""One npformer training step: forward, cross-entropy, backward, Adam update."""

from npformer.backend import get_backend, synchronize, to_device
from npformer.loss import cross_entropy
from npformer.model import Transformer


def make_adam(model, lr):
    """A zero-argument update: the training package's Adam (npformer.train.optim) at a constant
    learning rate, or, where that package is missing, the minimal Adam below."""
    try:
        from npformer.train.optim import Adam
    except ImportError:
        return MinimalAdam(model.parameters(), model.gradients(), lr).step
    adam, grads = Adam(model.parameters(), betas=(0.9, 0.98), eps=1e-9), model.gradients()
    return lambda: adam.step(grads, lr)


class MinimalAdam:
    """Adam (Kingma & Ba) with PyTorch's defaults for the Transformer, betas (0.9, 0.98), eps 1e-9.
    A stand-in used only while npformer.train.optim does not exist."""

    def __init__(self, params, grads, lr=1e-3, betas=(0.9, 0.98), eps=1e-9):
        self.params, self.grads = params, grads
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.m = {k: p * 0 for k, p in params.items()}
        self.v = {k: p * 0 for k, p in params.items()}
        self.t = 0

    def step(self):
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for k, p in self.params.items():
            g, m, v = self.grads[k], self.m[k], self.v[k]
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= (self.lr / c1) * m / ((v / c2) ** 0.5 + self.eps)


class NpformerStep:
    """A model, its optimiser and one training step on host batches."""

    def __init__(self, cfg, backend=None, seed=0, lr=1e-3):
        self.xp = get_backend(backend)
        self.model = Transformer(cfg, seed=seed, dtype="float32", backend=self.xp)
        self.update = make_adam(self.model, lr)

    def to_device(self, batch):
        return tuple(to_device(a, self.xp) for a in batch)

    def step(self, batch):
        src, tgt_in, tgt_out = batch
        self.model.zero_grad()
        logits = self.model.forward(src, tgt_in, training=True)              # (B,T,V)
        loss, dlogits = cross_entropy(logits, tgt_out, pad_id=self.model.cfg.pad_id)
        self.model.backward(dlogits)
        self.update()
        return loss

    def synchronize(self):
        synchronize(self.xp)

    def n_params(self):
        return sum(int(p.size) for p in self.model.parameters().values())
