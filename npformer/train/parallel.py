"""Data parallelism on the CPU: a batch split into parts, each part run forward and backward by
a replica of the model in a thread of its own.  docs: training.md

NumPy hands matrix products to a multi-threaded BLAS, but runs every elementwise operation
(softmax, LayerNorm, masks, the loss) on one core. It releases Python's global lock inside
its loops and BLAS calls, so two threads, each with a part of the batch and BLAS at one
thread, keep two cores busy through the elementwise work as well.

The loss is a mean over the N non-pad target tokens of the whole batch, so it is a sum of
per-part sums, and so is its gradient:

    part k:  logits_k = replica_k.forward(src_k, tgt_in_k)
             loss_k, dlogits_k = cross_entropy(logits_k, tgt_out_k, n_tokens=N)    each divided by N
             replica_k.backward(dlogits_k)                                          into replica k's grads
    then:    loss = sum_k loss_k;   dW = sum_k dW_k  for every parameter W

Replica 0 is the model itself. The others are built from the same config and then share its
parameter arena (Layer.share_parameters): an optimiser step on the model is seen by every
replica at once, while each keeps its own gradient arena (one flat array), caches and dropout
generator (replica k draws from a generator seeded by (seed + 1, k)). What a step computes
depends on the number of parts, never on how threads are scheduled: the parts' gradients are
summed in order 0, 1, ..., one add of a flat array per replica, so a run is repeatable and
resumes exactly. The threads also share the sum and Adam's update, a contiguous part of the
arena each (`parts`, about equal in size).
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from npformer.backend import blas_threads, default_rng, name_of, rng_state, set_rng_state, to_numpy
from npformer.layers.dropout import use_generator
from npformer.loss import cross_entropy


def default_replicas(xp):
    """Two on the CPU, where a second thread takes the elementwise work to a second core; one
    on a GPU, where the device already runs every operation in parallel and a second thread
    only doubles the kernel launches (measured on an H100: twice the step time)."""
    return 1 if name_of(xp) == "cupy" else 2


class DataParallel:
    """Runs forward, loss and backward of `model` over a batch split into `n` parts.

    step() leaves the whole batch's gradients in model.gradients(), as one forward and one
    backward over the whole batch would (to rounding), ready for clipping and the optimiser.
    """

    def __init__(self, model, n):
        if n < 1:
            raise ValueError(f"the number of replicas must be at least 1, got {n}.")
        self.model = model
        self.replicas = [model] + [self._replica(model, k) for k in range(1, n)]
        size = model.arena.size
        cuts = np.linspace(0, size, n + 1).astype(int)
        self.parts = [slice(cuts[k], cuts[k + 1]) for k in range(n)]  # of the arena, one per thread
        # part 0 runs in the calling thread; parts 1..n-1 in the pool's
        self.pool = ThreadPoolExecutor(n - 1, thread_name_prefix="npformer-replica") if n > 1 else None

    @staticmethod
    def _replica(model, k):
        replica = type(model)(model.cfg, seed=model.seed, dtype=model.dtype, backend=model.xp)
        replica.share_parameters(model)                          # the model's arrays, not copies
        use_generator(replica, default_rng(model.xp, [model.seed + 1, k]))  # masks of its own
        return replica

    def step(self, src, tgt_in, tgt_out, pad_id=0, label_smoothing=0.0):
        """src (B,S), tgt_in (B,T), tgt_out (B,T) ids -> the whole batch's mean loss (a float).
        Zeroes the gradients, then fills them with the whole batch's."""
        B = len(src)
        n = min(len(self.replicas), B)                           # never an empty part
        cuts = np.linspace(0, B, n + 1).astype(int)              # part k is rows cuts[k]:cuts[k+1]
        n_tokens = int((to_numpy(tgt_out) != pad_id).sum())      # N, the whole batch's count (0: cross_entropy says so)

        def part(k):
            rows = slice(cuts[k], cuts[k + 1])
            replica = self.replicas[k]
            replica.zero_grad()
            logits = replica.forward(src[rows], tgt_in[rows], training=True)  # (B_k,T,V)
            loss, dlogits = cross_entropy(logits, tgt_out[rows], pad_id=pad_id,
                                          label_smoothing=label_smoothing, n_tokens=n_tokens)
            replica.backward(dlogits)
            return loss

        if n == 1:
            return part(0)
        threads = blas_threads()
        blas_threads(1)                                          # one BLAS thread per part: no oversubscription
        try:
            losses = self.side_by_side([lambda k=k: part(k) for k in range(n)])
        finally:
            blas_threads(threads)
        self.side_by_side([lambda part=part: self._add_up(part, n) for part in self.parts])
        return sum(losses)

    def _add_up(self, part, n):
        """dW = dW_0 + dW_1 + ... + dW_{n-1}, in that order, into the model's gradient arena, on
        one part of it (each thread takes one part)."""
        g = self.model.arena.grads[part]
        for replica in self.replicas[1:n]:
            g += replica.arena.grads[part]

    def side_by_side(self, calls):
        """Run zero-argument callables, the first in this thread and the others in the pool's;
        returns their results in order."""
        others = [self.pool.submit(call) for call in calls[1:]]
        return [calls[0]()] + [f.result() for f in others]

    # ------------------------------------------------------------------ checkpoints

    def dropout_states(self):
        """Each replica's dropout generator, as host bytes for a checkpoint."""
        return [rng_state(r.drop_rng) for r in self.replicas]

    def set_dropout_states(self, states, seed, step):
        """Restore what dropout_states saved; True if every generator was restored. Where a state
        is missing or does not fit (a checkpoint from another backend or GPU, or with another
        number of replicas), every replica is reseeded from (seed, step): the run goes on
        deterministically, but not exactly as an unbroken one would."""
        if len(states) == len(self.replicas) and all(
                set_rng_state(r.drop_rng, s) for r, s in zip(self.replicas, states)):
            return True
        for k, replica in enumerate(self.replicas):
            seq = np.random.SeedSequence([seed + 1, step, k])
            use_generator(replica, default_rng(replica.xp, int(seq.generate_state(1)[0])))
        return False

