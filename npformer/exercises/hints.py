"""Known wrong answers and what to say about them.

A hint holds a candidate: the gradient a particular mistake produces, computed from the
reference solution on the same inputs and dout. When a learner's failing gradient equals a
candidate (and the candidate is not the right answer), the failure line says what that
mistake is instead of only naming the equation.
"""

import numpy as np

ACCUMULATE = ("gradients accumulate: add into self.grads[...] with +=, never assign with =, so a parameter "
              "used twice (tied weights, the replicas of a batch) gets both contributions")
BROADCAST = ("{name} was broadcast over every row in the forward (the batch axes B and T), so its gradient is "
             "summed over all of them, not taken from one row")
BROADCAST_ADD = ("A gradient added into self.grads has the parameter's shape: the parameter was broadcast over "
                 "the batch axes in the forward, so sum the gradient over them.")
BROADCAST_SHAPE = ("{name} was broadcast over the batch axes in the forward, so sum its gradient over them: "
                   "shape {want}, not {got}")


class Hint:
    """tensors: the gradient names it can explain (or a test of the name); candidates(ctx, tensor) ->
    the arrays the mistake gives."""

    def __init__(self, exercise, tensors, text, candidates):
        self.exercise, self.tensors, self.text, self.candidates = exercise, tensors, text, candidates

    def matches(self, ctx, tensor):
        if not (self.tensors(tensor) if callable(self.tensors) else tensor in self.tensors):
            return False
        yours, right = np.asarray(ctx.yours[tensor], float), ctx.right[tensor]
        return any(_equal(yours, c) and not _equal(right, c) for c in self.candidates(ctx, tensor))


def _equal(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = max(np.abs(b).max(initial=0), 1e-12)
    return a.shape == b.shape and bool(np.abs(a - b).max(initial=0) <= 1e-7 * scale)


def find_hint(ctx, tensor, shape=False, twice=False):
    """The text of the first hint that explains this failure, or None."""
    if twice:
        return ACCUMULATE
    for hint in HINTS.get(ctx.ex.name, []):
        if hint.matches(ctx, tensor):
            return hint.text
    if tensor in ctx.ref.params():
        return _broadcast(ctx, tensor, shape)
    return None


def _broadcast(ctx, tensor, shape):
    """A parameter gradient with the batch axes left in, or taken from one row of the batch."""
    yours, right = ctx.yours[tensor], ctx.right[tensor]
    name = tensor.split(".")[-1]
    if shape:
        got = np.shape(yours) if yours is not None else ()
        if yours is not None and len(got) > right.ndim and got[len(got) - right.ndim:] == right.shape:
            return BROADCAST_SHAPE.format(name=name, want=right.shape, got=got)
        return None
    d = ctx.dout
    if d.ndim < 2:
        return None
    rows = [(0,), (-1,)] + ([(0, 0), (-1, -1)] if d.ndim >= 3 else [])
    for row in rows:
        only = np.zeros_like(d)
        only[row] = d[row]
        if _equal(yours, ctx.reference(only)[tensor]):
            return BROADCAST.format(name=name)
    return None


# ----------------------------------------------------------------------------- the candidates

def _attention_parts(q, k, v, A, dout, row_dot=True):
    """The plain backward of attention: (dq, dk, dv), with or without the softmax's row dot."""
    scale = q.shape[-1] ** -0.5
    dA = dout @ v.swapaxes(-1, -2)                               # (B,H,T,S)  (ATT-4)
    dv = A.swapaxes(-1, -2) @ dout                               # (B,H,S,K)  (ATT-5)
    dscores = A * (dA - (dA * A).sum(axis=-1, keepdims=True) if row_dot else dA) * scale  # (ATT-6)
    return dscores @ k, dscores.swapaxes(-1, -2) @ q, dv         # (ATT-7), (ATT-8)


def _softmax_no_row_dot(ctx, tensor):
    return [ctx.ref.layer.cache * ctx.dout]


def _attention_scale(ctx, tensor):
    return [ctx.right[tensor] * ctx.ref.inputs["q"].shape[-1] ** 0.5]


def _attention_no_row_dot(ctx, tensor):
    q, k, v, A, _ = ctx.ref.layer.layer.cache
    dq, dk, _ = _attention_parts(q, k, v, A, ctx.dout, row_dot=False)
    return [{"q": dq, "k": dk}[tensor]]


def _layernorm_no_means(ctx, tensor):
    xhat, rstd = ctx.ref.layer.cache
    return [rstd * ctx.dout * ctx.ref.params()["gamma"]]


def _embedding_buffered(ctx, tensor):
    ids = ctx.ref.layer.cache
    dW = np.zeros_like(ctx.right["W"])
    dW[ids] += ctx.dout                                          # the mistake: one row survives per id
    return [dW]


def _ce_padding(ctx, tensor):
    logp, q, valid, n = ctx.ref.layer.cache
    B, T, _ = logp.shape
    p_minus_q = ctx.dout * (np.exp(logp) - q)
    return [p_minus_q / n, p_minus_q / (B * T)]


def _ce_count(ctx, tensor):
    logp, q, valid, n = ctx.ref.layer.cache
    B, T, _ = logp.shape
    return [ctx.right[tensor] * n, ctx.right[tensor] * n / (B * T)]


def _dropout_scale(ctx, tensor):
    p = ctx.ref.layer.p
    return [ctx.right[tensor] * (1 - p), ctx.right[tensor] / (1 - p)]


def _ffn_no_relu(ctx, tensor):
    x, a = ctx.ref.layer.layer.cache[0], ctx.ref.layer.layer.cache[2]
    W1, W2 = ctx.ref.params()["W1"], ctx.ref.params()["W2"]
    D = x.shape[-1]
    dh = ctx.dout @ W2.T                                         # (B,T,F)  the mistake: relu's mask left out
    return [{"x": dh @ W1.T, "W1": x.reshape(-1, D).T @ dh.reshape(-1, dh.shape[-1]),
             "b1": dh.reshape(-1, dh.shape[-1]).sum(axis=0)}[tensor]]


def _mha_one_path(ctx, tensor):
    mha = ctx.ref.layer.layer
    q, k, v, A, _ = mha.attention.cache
    p = ctx.ref.params()
    dheads = mha.split_heads(ctx.dout @ p["Wo"].T)               # (B,H,T,K)
    merge = lambda h: h.transpose(0, 2, 1, 3).reshape(h.shape[0], h.shape[2], -1)  # noqa: E731
    dq, dk, dv = (merge(g) for g in _attention_parts(q, k, v, A, dheads))
    return [dq @ p["Wq"].T, dk @ p["Wk"].T, dv @ p["Wv"].T]


def _sublayer_no_residual(ctx, tensor):
    layer = ctx.ref.layer
    residual = layer.norm.backward(ctx.dout) if layer.position == "post" else ctx.dout
    return [ctx.right["x"] - residual]


def _gru_no_carry(ctx, tensor):
    layer = ctx.ref.layer
    ctx.ref.zero_grad()
    steps = [layer.step_backward(ctx.dout[:, t], c) for t, c in enumerate(layer.cache)]
    return [{"x": np.stack([dx for dx, _ in steps], axis=1), "h0": steps[0][1], **ctx.ref.grads()}[tensor]]


def _tf_scale(ctx, tensor):
    return [ctx.right[tensor] / ctx.ref.layer.emb_scale]


def _tf_no_memory(ctx, tensor):
    return [np.zeros_like(ctx.right[tensor])]


HINTS = {}
for _hint in [
    Hint("softmax", ("x",), "you applied the softmax Jacobian's diagonal only: dx = y * (dout - sum(dout * y) "
         "over the row); the row dot product is the path through the normalising sum", _softmax_no_row_dot),
    Hint("attention", ("q", "k"), "the forward divides the scores by sqrt(d_k); its backward multiplies dscores by "
         "1/sqrt(d_k) too (ATT-6), before dq and dk", _attention_scale),
    Hint("attention", ("q", "k"), "the softmax backward inside attention needs the row dot product: dscores = "
         "A * (dA - sum(dA * A) over the row) / sqrt(d_k), not A * dA / sqrt(d_k)", _attention_no_row_dot),
    Hint("layernorm", ("x",), "xhat depends on x through the mean and the variance as well: dx = rstd * (dxhat - "
         "mean(dxhat) - xhat * mean(dxhat * xhat)), not rstd * dxhat", _layernorm_no_means),
    Hint("embedding", ("W",), "`dW[ids] += dout` keeps one row per repeated id (NumPy buffers the assignment); "
         "scatter-add every occurrence with np.add.at(dW, ids, dout)", _embedding_buffered),
    Hint("cross_entropy", ("logits",), "padded positions are not tokens: multiply (p - q) by the mask "
         "targets != pad_id, so their gradient is 0, and divide by the N real tokens", _ce_padding),
    Hint("cross_entropy", ("logits",), "the loss is a mean over the N non-pad tokens, so its gradient is "
         "divided by N (the real tokens, not B*T)", _ce_count),
    Hint("dropout", ("x",), "the cached mask is already scaled by 1/(1-p): dx = dout * cache, with no further "
         "(1-p) factor either way", _dropout_scale),
    Hint("feedforward", ("x", "W1", "b1"), "relu passes the gradient only where h > 0: dh = da * (h > 0) (FFN-5), "
         "before W1's gradients and dx", _ffn_no_relu),
    Hint("multihead", ("x",), "in self-attention x is the query, the key and the value: dx is the sum of all "
         "three paths, dQ Wq^T + dK Wk^T + dV Wv^T, not one of them", _mha_one_path),
    Hint("sublayer", ("x",), "x reaches the output along the residual too: add the residual's gradient (dz, the "
         "gradient of x + Dropout(...)) to the sublayer path's", _sublayer_no_residual),
    Hint("gru", ("x", "h0", "W", "U", "b"), "h_t feeds the output at t and the next step: backpropagate dout[:, t] + the dh "
         "carried back from step t+1 (GRU-14), starting from zero after the last step", _gru_no_carry),
    Hint("transformer", ("src_embed.W", "tgt_embed.W"), "the forward multiplies the embeddings by sqrt(D) "
         "(emb_scale): multiply their gradient by it too", _tf_scale),
]:
    HINTS.setdefault(_hint.exercise, []).append(_hint)


HINTS["transformer"].append(
    Hint("transformer", lambda t: t.startswith(("encoder.", "src_")), "the encoder's only gradient is the "
         "memory's: pass the dmemory decoder.backward returns to encoder.backward", _tf_no_memory))
