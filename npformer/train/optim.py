"""Adam, the learning-rate schedules and global-norm gradient clipping.  docs: derivations/adam.md

Section 5.3 of the paper: Adam with beta1 = 0.9, beta2 = 0.98, eps = 1e-9, and

    lr(step) = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)        (LR-1)

which rises linearly for `warmup` steps and then decays as 1/sqrt(step); training names its
peak rate instead of the factor (LR-3). The other schedule is linear warm-up to a constant
(LR-2). Steps count from 1.

Everything runs on the parameters' own backend (xp = get_xp(param)); nothing leaves the device.
"""

import math

from npformer.backend import get_xp, name_of, to_device, to_numpy


# ----------------------------------------------------------------------------- schedules

def paper_lr(step, d_model, warmup, factor=1.0):
    """The paper's schedule (LR-1): linear warm-up, then inverse square-root decay."""
    return factor * d_model ** -0.5 * min(step ** -0.5, step * warmup ** -1.5)  # (LR-1)


def warmup_constant_lr(step, lr, warmup):
    """Linear warm-up from lr/warmup at step 1 to `lr` at step `warmup`, then constant (LR-2)."""
    return lr * min(1.0, step / warmup) if warmup > 0 else lr  # (LR-2)


SCHEDULES = ("paper", "constant")
AFTER_WARMUP = {"paper": "then 1/sqrt(step)", "constant": "then constant"}  # for run headers


def learning_rate(step, schedule, lr, warmup, d_model):
    """The learning rate at `step` (from 1); `lr` is the peak, reached at step `warmup`.

    "paper": LR-1 with the factor that puts its peak at `lr`, then 1/sqrt(step) decay.
    "constant": LR-2, linear warm-up to `lr`, then `lr`.
    """
    if schedule == "paper":
        factor = lr * math.sqrt(d_model * warmup)                # LR-1's peak k D^-1/2 warmup^-1/2 = lr  (LR-3)
        return paper_lr(step, d_model, warmup, factor=factor)
    return warmup_constant_lr(step, lr, warmup)


# ----------------------------------------------------------------------------- clipping

def clip_grad_norm(grads, max_norm):
    """Scale every gradient by min(1, max_norm / ||g||), ||g|| the norm of all of them together.

    Works in place and on the device: the scale stays a 0-d device array, so clipping costs
    no transfer. Returns the norm before clipping (0-d, on the device; float() it to log it).
    max_norm <= 0 only measures.
    """
    grads = list(grads.values()) if isinstance(grads, dict) else list(grads)
    xp = get_xp(grads[0])
    total = sum((g * g).sum() for g in grads)                    # ()  sum of squares, over every tensor
    norm = xp.sqrt(total)                                        # ()  global L2 norm
    if max_norm > 0:
        scale = xp.minimum(1.0, max_norm / (norm + 1e-6))        # ()  1 when already inside the ball
        for g in grads:
            g *= scale.astype(g.dtype)
    return norm


# ----------------------------------------------------------------------------- Adam

class Adam:
    """Adam (Kingma & Ba, 2015), updating the live parameters in place.

        m = b1 m + (1 - b1) g                      (ADAM-1)  first moment
        v = b2 v + (1 - b2) g^2                    (ADAM-2)  second moment
        m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)        (ADAM-3)  bias corrections
        p = p - lr m_hat / (sqrt(v_hat) + eps)     (ADAM-4)

    params: name -> live array (model.parameters()). State: m and v per parameter (same shape,
    dtype and backend) and the step count t, all exposed by state_dict() for checkpoints.
    One scratch buffer per parameter keeps a step from allocating.

    The update makes twelve passes over each parameter's p, g, m, v and scratch. On the CPU it
    goes block by block (`block_size` elements): a block of all five arrays stays in the core's
    cache from one pass to the next, where a whole (512, 2048) parameter, 4 MB an array, would
    go back to memory after each pass. On a GPU the blocks would only multiply the kernel
    launches, so each parameter is one block there.
    """

    CPU_BLOCK = 1 << 16                                          # elements: 5 arrays x 256 KB, in a 2 MB L2

    def __init__(self, params, betas=(0.9, 0.98), eps=1e-9):
        self.params = params
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        self.m = {k: get_xp(p).zeros_like(p) for k, p in params.items()}
        self.v = {k: get_xp(p).zeros_like(p) for k, p in params.items()}
        self._tmp = {k: get_xp(p).empty_like(p) for k, p in params.items()}
        on_gpu = any(name_of(get_xp(p)) == "cupy" for p in params.values())
        self.block_size = None if on_gpu else self.CPU_BLOCK

    def step(self, grads, lr, parallel=None):
        """One update of every parameter from its gradient (name -> array, like params).

        parallel: a DataParallel to share the work with: each of its threads updates one of its
        groups of parameters (of about equal total size). The update is elementwise work on one
        core, and NumPy lets go of Python's global lock inside its loops, so the groups run
        side by side; each parameter's arithmetic is the same whichever thread does it."""
        self.t += 1
        b1, b2, t = self.beta1, self.beta2, self.t
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t                    # (ADAM-3) bias corrections, scalars
        # lr m_hat / (sqrt(v_hat) + eps) with both corrections moved onto two scalars:
        # = (lr sqrt(c2) / c1) m / (sqrt(v) + eps sqrt(c2)), one pass fewer over each parameter
        step_size, eps = lr * math.sqrt(c2) / c1, self.eps * math.sqrt(c2)  # (ADAM-3)
        if parallel is None:
            self._update(self.params, grads, step_size, eps)
            return
        parallel.side_by_side([lambda group=group: self._update(group, grads, step_size, eps)
                               for group in parallel.groups])

    def _update(self, names, grads, step_size, eps):
        for name in names:
            arrays = (self.params[name], grads[name], self.m[name], self.v[name], self._tmp[name])
            for block in _row_blocks(arrays[0], self.block_size):
                self._update_block(*(a[block] for a in arrays), step_size, eps)

    def _update_block(self, p, g, m, v, tmp, step_size, eps):
        """ADAM-1 to ADAM-4 on one block of a parameter, in place: p, m and v are views.
        step_size = lr sqrt(c2) / c1 and eps = eps sqrt(c2), the corrections folded in (step)."""
        xp = get_xp(p)
        b1, b2 = self.beta1, self.beta2
        m *= b1
        m += xp.multiply(g, 1.0 - b1, out=tmp)                   # (ADAM-1) m = b1 m + (1-b1) g
        v *= b2
        xp.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp                                                 # (ADAM-2) v = b2 v + (1-b2) g^2
        xp.sqrt(v, out=tmp)
        tmp += eps                                               # (ADAM-3) sqrt(v_hat) + eps, times sqrt(c2)
        xp.divide(m, tmp, out=tmp)
        tmp *= step_size                                         # lr m_hat / (sqrt(v_hat) + eps)
        p -= tmp                                                 # (ADAM-4)

    def state_dict(self):
        """{"step": t, "m": {name: array}, "v": {name: array}} (live arrays, not copies)."""
        return {"step": self.t, "m": self.m, "v": self.v}

    def load_state_dict(self, state):
        """Restore t, m and v (arrays of any backend are copied into this optimiser's own)."""
        self.t = int(state["step"])
        for which in ("m", "v"):
            mine = getattr(self, which)
            for name, a in mine.items():
                a[...] = to_device(to_numpy(state[which][name]).astype(a.dtype), get_xp(a))


def _row_blocks(a, size):
    """Slices that cut `a` (at least 1-D) along its first axis into blocks of whole rows, about
    `size` elements each, so a block of a strided view (MHA's Wq inside Wqkv) is still a view
    of it; one block when size is None."""
    rows = len(a)
    step = rows if size is None else max(1, size * rows // a.size)   # rows per block
    return [slice(i, i + step) for i in range(0, rows, step)]
