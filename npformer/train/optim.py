"""Adam, the learning-rate schedules and global-norm gradient clipping.  docs: derivations/adam.md

Section 5.3 of the paper: Adam with beta1 = 0.9, beta2 = 0.98, eps = 1e-9, and

    lr(step) = factor * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)        (LR-1)

which rises linearly for `warmup` steps and then decays as 1/sqrt(step); training names its
peak rate instead of the factor (LR-3). The other schedule is linear warm-up to a constant
(LR-2). Steps count from 1.

Everything runs on the parameters' own backend (xp = get_xp(param)); nothing leaves the device.
"""

import math

from npformer.backend import get_xp, is_array, name_of, to_device, to_numpy


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
    """Scale the gradients by min(1, max_norm / ||g||), ||g|| the norm of all of them together.

    grads: one array, normally a model's whole gradient arena (model.arena.grads), so the norm
    is one reduction and the scaling one multiply; or a list or dict of arrays. Works in place
    and on the device: the scale stays a 0-d device array, so clipping costs no transfer.
    Returns the norm before clipping (0-d, on the device; float() it to log it).
    max_norm <= 0 only measures.
    """
    if isinstance(grads, dict):
        grads = list(grads.values())
    elif is_array(grads):
        grads = [grads]
    xp = get_xp(grads[0])
    total = sum((xp.vdot(g, g) for g in grads[1:]), xp.vdot(grads[0], grads[0]))  # ()  sum of squares, over every element
    norm = xp.sqrt(total)                                        # ()  global L2 norm
    if max_norm > 0:
        scale = xp.minimum(1.0, max_norm / (norm + 1e-6))        # ()  1 when already inside the ball
        for g in grads:
            g *= scale                                           # the gradients' dtype: norm is computed in it
    return norm


# ----------------------------------------------------------------------------- Adam

class Adam:
    """Adam (Kingma & Ba, 2015), updating a model's parameters in place.

        m = b1 m + (1 - b1) g                      (ADAM-1)  first moment
        v = b2 v + (1 - b2) g^2                    (ADAM-2)  second moment
        m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t)        (ADAM-3)  bias corrections
        p = p - lr m_hat / (sqrt(v_hat) + eps)     (ADAM-4)

    arena: the model's parameter arena (model.arena, layers/arena.py): every parameter in one
    flat array, every gradient in a second. The moments m and v are flat arrays of the same
    layout, so each line above is one operation over the whole model, not one per parameter.
    State: m, v and the step count t; state_dict() shows m and v by parameter name (views of
    the flat arrays), as checkpoints store them. One scratch array keeps a step from allocating.

    The update makes twelve passes over p, g, m, v and the scratch. On the CPU it goes block by
    block (`block_size` elements): a block of all five arrays stays in the core's cache from
    one pass to the next, where the whole arrays (2.5 MB each at the default size, 40 MB at
    the large one) would go back to memory after each pass. On a GPU the blocks would only
    multiply the kernel launches, so the whole arena is one block there.
    """

    CPU_BLOCK = 1 << 16                                          # elements: 5 arrays x 256 KB, in a 2 MB L2

    def __init__(self, arena, betas=(0.9, 0.98), eps=1e-9):
        self.arena = arena
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        xp = get_xp(arena.params)
        self.flat_m, self.flat_v = xp.zeros_like(arena.params), xp.zeros_like(arena.params)  # (P,) each
        self._tmp = xp.empty_like(arena.params)                  # (P,)  scratch
        self.m, self.v = arena.views(self.flat_m), arena.views(self.flat_v)  # name -> view, for checkpoints
        self.block_size = None if name_of(xp) == "cupy" else self.CPU_BLOCK

    def step(self, lr, parallel=None):
        """One update of every parameter from its gradient (the arena's two flat arrays).

        parallel: a DataParallel to share the work with: each of its threads updates one part
        of the arena (`parallel.parts`, contiguous slices of about equal size). The update is
        elementwise work on one core, and NumPy lets go of Python's global lock inside its
        loops, so the parts run side by side; each element's arithmetic is the same whichever
        thread does it."""
        self.t += 1
        b1, b2, t = self.beta1, self.beta2, self.t
        c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t                    # (ADAM-3) bias corrections, scalars
        # lr m_hat / (sqrt(v_hat) + eps) with both corrections moved onto two scalars:
        # = (lr sqrt(c2) / c1) m / (sqrt(v) + eps sqrt(c2)), one pass fewer over each parameter
        step_size, eps = lr * math.sqrt(c2) / c1, self.eps * math.sqrt(c2)  # (ADAM-3)
        if parallel is None:
            self._update(slice(0, self.arena.size), step_size, eps)
            return
        parallel.side_by_side([lambda part=part: self._update(part, step_size, eps)
                               for part in parallel.parts])

    def _update(self, part, step_size, eps):
        """The update of the arena's elements in `part` (a slice), block by block."""
        arrays = (self.arena.params, self.arena.grads, self.flat_m, self.flat_v, self._tmp)
        size = part.stop - part.start if self.block_size is None else self.block_size
        for start in range(part.start, part.stop, size):
            block = slice(start, min(start + size, part.stop))
            self._update_block(*(a[block] for a in arrays), step_size, eps)

    def _update_block(self, p, g, m, v, tmp, step_size, eps):
        """ADAM-1 to ADAM-4 on one block of the arena, in place: p, m and v are views.
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
        """{"step": t, "m": {name: array}, "v": {name: array}} (live views, not copies)."""
        return {"step": self.t, "m": self.m, "v": self.v}

    def load_state_dict(self, state):
        """Restore t, m and v (arrays of any backend are copied into this optimiser's own)."""
        self.t = int(state["step"])
        for which in ("m", "v"):
            mine = getattr(self, which)
            for name, a in mine.items():
                a[...] = to_device(to_numpy(state[which][name]).astype(a.dtype), get_xp(a))
