"""One npformer training step: forward, cross-entropy, backward, Adam update, as `npformer
train` takes it (the batch split among the default number of replicas: 2 on the CPU, 1 on a GPU)."""

from npformer.backend import get_backend, synchronize, to_device
from npformer.model import Transformer
from npformer.train.optim import Adam, clip_grad_norm
from npformer.train.parallel import DataParallel, default_replicas


class NpformerStep:
    """A model, its optimiser and one training step on host batches."""

    def __init__(self, cfg, backend=None, seed=0, lr=1e-3, replicas=None):
        self.xp = get_backend(backend)
        self.model = Transformer(cfg, seed=seed, dtype="float32", backend=self.xp)
        self.parallel = DataParallel(self.model, replicas or default_replicas(self.xp))
        self.adam = Adam(self.model.arena, betas=(0.9, 0.98), eps=1e-9)  # the training package's, as `npformer train` makes it
        self.lr = lr                                             # constant

    def to_device(self, batch):
        return tuple(to_device(a, self.xp) for a in batch)

    def step(self, batch, clip=0.0):
        """clip > 0: clip the gradients to that global norm first, as `npformer train` does."""
        src, tgt_in, tgt_out = batch
        loss = self.parallel.step(src, tgt_in, tgt_out, pad_id=self.model.cfg.pad_id)  # zero, forward, loss, backward
        if clip > 0:
            clip_grad_norm(self.model.arena.grads, clip)
        self.adam.step(self.lr, self.parallel)                   # shared among the replicas' threads
        return loss

    def synchronize(self):
        synchronize(self.xp)

    def n_params(self):
        return sum(int(p.size) for p in self.model.parameters().values())
