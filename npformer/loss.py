"""Cross-entropy from logits, with label smoothing and padding.  docs: derivations/crossentropy.md

Over the N non-pad target tokens, with p = softmax(logits) and the target distribution
q = (1 - eps) onehot(y) + eps / V (eps = label smoothing, spread over all V classes as PyTorch does):

    loss = -(1/N) sum_tokens sum_v q_v log p_v           dlogits = (p - q) / N   at non-pad tokens, 0 elsewhere

A logit of -inf is a masked class: p_v = 0 and its gradient is p_v - q_v, finite. Without
smoothing the loss stays finite too (the class is never the target); with smoothing, q gives
it eps/V, so the loss is +inf, as the formula says. A +inf logit, or a row that is -inf
everywhere, has no softmax: the loss and gradient are NaN (and training stops on it).
"""

import numbers

from npformer.backend import get_xp, to_device
from npformer.errors import InputError
from npformer.layers.embedding import check_ids


def log_softmax(logits):
    """log p = x - logsumexp(x) over the last axis, shifted by the row max so exp never overflows.

    Inputs: logits (..., V).  Returns: log-probabilities (..., V), same dtype and backend.
    """
    xp = get_xp(logits)
    shifted = logits - logits.max(axis=-1, keepdims=True)        # (...,V)  the largest entry becomes 0
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))  # (...,V)


def cross_entropy(logits, targets, pad_id=0, label_smoothing=0.0, n_tokens=None):
    """Mean cross-entropy over non-pad tokens, and its gradient.

    Inputs: logits (B,T,V) float, targets (B,T) integer ids (host or device).
    n_tokens: divide by this count instead of the batch's own number of non-pad tokens; the
    parts of a split batch pass the whole batch's count, so their losses and gradients add up
    to the whole batch's (train/parallel.py).
    Returns: (loss as a Python float, dlogits (B,T,V) of logits' dtype and backend).
    """
    if not hasattr(logits, "ndim") or not hasattr(logits, "dtype") or logits.dtype.kind != "f":
        raise InputError(f"logits must be a floating-point array (B, T, V), got {type(logits).__name__}"
                         f"{' of ' + str(logits.dtype) if hasattr(logits, 'dtype') else ''}.")
    xp = get_xp(logits)
    if logits.ndim != 3:
        raise InputError(f"logits must have shape (B, T, V), got {tuple(logits.shape)}.")
    B, T, V = logits.shape
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real) \
            or not 0.0 <= label_smoothing < 1.0:
        raise InputError(f"label_smoothing must be a number in [0, 1), got {label_smoothing!r}.")
    host_targets = check_ids(targets, V, "target ids")
    if host_targets.shape != (B, T):
        raise InputError(f"targets have shape {host_targets.shape} but logits have (B, T) = {(B, T)}.")
    if n_tokens is None:
        n_tokens = int((host_targets != pad_id).sum())
    if n_tokens <= 0:
        raise InputError("the batch has no target token that is not padding, so its loss is undefined.")
    targets = to_device(host_targets, xp)

    logp = log_softmax(logits)                                   # (B,T,V)  (CE-1)
    valid = (targets != pad_id)                                  # (B,T)
    rows = xp.arange(B)[:, None], xp.arange(T)[None, :]
    nll = -logp[rows[0], rows[1], targets]                       # (B,T)  -log p of the true token
    per_token = nll                                              # (B,T)
    if label_smoothing:                                          # skipped at 0: 0 * inf would be NaN at a -inf logit
        smooth = -logp.mean(axis=-1)                             # (B,T)  -mean_v log p_v
        per_token = (1.0 - label_smoothing) * nll + label_smoothing * smooth  # (B,T)
    loss = float(xp.where(valid, per_token, 0).sum()) / n_tokens  # (CE-2)  where: padding never adds 0 * inf

    dlogits = xp.exp(logp)                                       # (B,T,V)  p
    dlogits -= label_smoothing / V                               # q's uniform part
    dlogits[rows[0], rows[1], targets] -= 1.0 - label_smoothing  # q's one-hot part
    dlogits *= (valid.astype(logits.dtype) / n_tokens)[..., None]  # (B,T,V)  padding gets 0; no float64 detour  (CE-3)
    return loss, dlogits
