"""The ladder of exercises, easiest first: for each, its page, its labels, the cases its check
runs and the equation each gradient comes from.

A case builds one instance of a class (the learner's, or the reference solution to compare
with) from fixed seeds, so both see the same parameters, inputs and dropout masks:

    run = build(cls)     run.forward() -> out;  run.backward(dout) -> {input: gradient}
                         run.params(), run.grads(), run.zero_grad(), run.cache()
"""

import importlib
from dataclasses import dataclass

import numpy as np

from npformer.exercises.checker import ExerciseError
from npformer.masks import causal_keep, padding_keep, target_keep

PAD = 0


class Run:
    """One instance under check: its float inputs, how to call forward and backward, and what
    backward returns (the names of the input gradients, in order; () for none)."""

    def __init__(self, layer, inputs, forward, backward, returns, method="backward", cache=None, max_elements=None):
        self.layer, self.inputs, self.returns, self.method = layer, inputs, returns, method
        self._forward, self._backward, self._cache = forward, backward, cache
        self.max_elements = max_elements

    def forward(self):
        return self._forward()

    def backward(self, dout):
        r = self._backward(dout)
        cls, n = type(self.layer).__name__, len(self.returns)
        names = ", ".join(f"d{t} {tuple(self.inputs[t].shape)}" for t in self.returns)
        if n == 0:
            return {}
        if n == 1:
            if r is None or isinstance(r, (tuple, list)):
                raise ExerciseError(f"{cls}.{self.method} returned {_what(r)}; it must return {names}, one array.")
            return {self.returns[0]: r}
        if not isinstance(r, (tuple, list)) or len(r) != n:
            raise ExerciseError(f"{cls}.{self.method} returned {_what(r)}; it must return the tuple ({names}).")
        return dict(zip(self.returns, r))

    def params(self):
        return self.layer.parameters() if callable(getattr(self.layer, "parameters", None)) else self.layer.params

    def grads(self):
        return self.layer.gradients() if callable(getattr(self.layer, "gradients", None)) else self.layer.grads

    def zero_grad(self):
        for g in self.grads().values():
            g[...] = 0

    def cache(self):
        if self._cache is not None:
            return self._cache()
        if callable(getattr(self.layer, "named_layers", None)):
            return {name: sub.cache for name, sub in self.layer.named_layers()}
        return self.layer.cache


def _what(r):
    if r is None:
        return "None"
    if isinstance(r, (tuple, list)):
        return f"a {type(r).__name__} of {len(r)}"
    return f"one {type(r).__name__} of shape {tuple(np.shape(r))}"


@dataclass
class Exercise:
    name: str
    title: str
    page: str                    # under docs/
    labels: str                  # the labels the learner implements
    cls: str                     # the class in the file
    cases: list                  # [(title, build)], build(cls) -> Run
    tensors: dict                # gradient name -> (label, what it is), for failure lines
    methods: tuple = ("backward",)
    train: str = None            # the package layer --train swaps out, or None

    def template(self):
        return getattr(importlib.import_module(f"npformer.exercises.templates.{self.name}"), self.cls)

    @property
    def solution(self):
        from npformer.exercises.solutions import SOLUTIONS
        return SOLUTIONS[self.name]

    def label_of(self, tensor):
        """(label, what) for a gradient name; dotted names ('encoder.layers.0.ffn.W1') by prefix."""
        for key in (tensor, tensor.split(".")[0], tensor.split(".")[-1]):
            if key in self.tensors:
                return self.tensors[key]
        return self.labels, f"the page derives it: docs/{self.page}"


# ----------------------------------------------------------------------------- inputs

def _normal(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape)


def _ids(rows):
    """Lists of ids padded with PAD to the longest: (B, L)."""
    L = max(len(r) for r in rows)
    return np.array([r + [PAD] * (L - len(r)) for r in rows])


def _seeded(layer, seed=1):
    """Every parameter of a plain exercise class set from a seed (not its own initialisation)."""
    rng = np.random.default_rng(seed)
    for name in sorted(layer.params):
        layer.params[name][...] = rng.standard_normal(layer.params[name].shape) * 0.7
    return layer


def _freeze(layer):
    for _, sub in layer.named_layers():
        if hasattr(sub, "freeze"):
            sub.freeze()
    return layer


def _one_input(make, shape, seed=2, offset=0.0, scale=1.0, **call):
    """A layer with one float input x: forward(x, **call) and backward(dout) -> dx."""
    def build(cls):
        layer = make(cls)
        x = _normal(seed, *shape) * scale + offset
        return Run(layer, {"x": x}, lambda: layer.forward(x, **call), layer.backward, ("x",))
    return build


# ----------------------------------------------------------------------------- the cases

def _softmax(keep, scale=1.0):
    def build(cls):
        layer = cls()
        x = _normal(2, 2, 3, 5) * scale
        return Run(layer, {"x": x}, lambda: layer.forward(x, keep), layer.backward, ("x",))
    return build


def _cross_entropy(smoothing, rows, V=6, scale=1.0):
    def build(cls):
        layer = cls(PAD, smoothing)
        targets = _ids(rows)
        logits = _normal(3, *targets.shape, V) * scale
        return Run(layer, {"logits": logits}, lambda: layer.forward(logits, targets), layer.backward, ("logits",))
    return build


def _attention(T, S, H, keep):
    def build(cls):
        layer = cls()
        q, k, v = _normal(4, 2, H, T, 3), _normal(5, 2, H, S, 3), _normal(6, 2, H, S, 3)
        return Run(layer, {"q": q, "k": k, "v": v}, lambda: layer.forward(q, k, v, keep), layer.backward,
                   ("q", "k", "v"))
    return build


def _embedding(rows):
    def build(cls):
        layer = _seeded(cls(7, 4))
        ids = _ids(rows)
        return Run(layer, {}, lambda: layer.forward(ids), layer.backward, ())
    return build


def _dropout(p, shape, training=True):
    def build(cls):
        layer = cls(p, np.random.default_rng(3))
        layer.frozen = True                                      # the first forward draws the mask; the rest reuse it
        x = _normal(2, *shape)
        return Run(layer, {"x": x}, lambda: layer.forward(x, training), layer.backward, ("x",))
    return build


def _multihead(H, T, S=None, rows=None):
    def build(cls):
        layer = _seeded(cls(8, H))
        x = _normal(7, 2, T, 8)
        if S is None:                                            # self-attention: causal and padding
            keep = target_keep(_ids(rows), PAD)
            return Run(layer, {"x": x}, lambda: layer.forward(x, keep), layer.backward, ("x",))
        memory = _normal(8, 2, S, 8)
        keep = padding_keep(_ids(rows), PAD)
        return Run(layer, {"x": x, "memory": memory}, lambda: layer.forward(x, keep, memory), layer.backward,
                   ("x", "memory"))
    return build


def _encoder_layer(norm):
    def build(cls):
        layer = _freeze(cls(8, 2, 12, 0.2, norm, np.random.default_rng(0)))
        x = _normal(9, 2, 5, 8)
        keep = padding_keep(_ids([[3, 4, 5, 6, 7], [3, 4, 5]]), PAD)
        return Run(layer, {"x": x}, lambda: layer.forward(x, keep), layer.backward, ("x",))
    return build


def _gru_step(cls):
    layer = _seeded(cls(3, 4))
    x, h, keep = _normal(10, 2, 3), _normal(11, 2, 4) * 0.5, np.array([True, False])
    held = {}

    def forward():
        out, held["cache"] = layer.step(x, h, keep)
        return out
    return Run(layer, {"x": x, "h": h}, forward, lambda d: layer.step_backward(d, held["cache"]), ("x", "h"),
               method="step_backward", cache=lambda: held.get("cache"))


def _gru_bptt(cls):
    layer = _seeded(cls(3, 4))
    x, h0 = _normal(12, 2, 4, 3), _normal(13, 2, 4) * 0.5
    keep = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)          # the second row is padded after two steps
    return Run(layer, {"x": x, "h0": h0}, lambda: layer.forward(x, h0, keep), layer.backward, ("x", "h0"))


def _transformer(cls):
    cfg = dict(src_vocab=9, tgt_vocab=8, d_model=8, n_heads=2, d_ff=16, n_layers=2, dropout=0.1, max_len=8,
               positional="learned")
    model = _freeze(cls(cfg, seed=0, dtype="float64", backend="numpy"))
    src, tgt_in = _ids([[3, 4, 5, 6, 2], [3, 4, 2]]), _ids([[1, 5, 6, 7], [1, 5]])
    return Run(model, {}, lambda: model.forward(src, tgt_in), model.backward, (), max_elements=2)


def _keep(rows):
    return np.array(rows, bool)


EXERCISES = {ex.name: ex for ex in [
    Exercise("linear", "y = x W + b", "derivations/linear.md", "LIN-2, LIN-3, LIN-4", "Linear", [
        ("(B,T,in) = (2,3,4), out = 5", _one_input(lambda c: _seeded(c(4, 5)), (2, 3, 4))),
        ("T = 1", _one_input(lambda c: _seeded(c(4, 5)), (3, 1, 4))),
    ], {"x": ("LIN-4", "dx = dout W^T"), "W": ("LIN-2", "dW = x^T dout, summed over every row"),
        "b": ("LIN-3", "db = dout summed over every row")}, train="Linear"),
    Exercise("softmax", "softmax, plain and masked", "derivations/softmax.md", "SM-2", "Softmax", [
        ("plain, (2,3,5)", _softmax(None)),
        ("masked, the second row masked everywhere", _softmax(_keep([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0],
                                                                   [1, 0, 0, 0, 0]]))),
        ("scores of +-1e4 (the row max keeps exp finite)", _softmax(None, scale=1e4)),
    ], {"x": ("SM-2", "dx = y * (dout - sum(dout * y) over the row)")}),
    Exercise("cross_entropy", "cross-entropy with label smoothing and padding", "derivations/crossentropy.md",
             "CE-3", "CrossEntropy", [
        ("no smoothing, padding in the targets", _cross_entropy(0.0, [[3, 1, 4, 2], [2, 5]])),
        ("label smoothing 0.1, padding", _cross_entropy(0.1, [[3, 1, 4, 2], [2, 5, 4]])),
        ("logits of +-1e4, one token", _cross_entropy(0.0, [[3]], scale=1e4)),
    ], {"logits": ("CE-3", "dlogits = dout * (p - q) / N at non-pad tokens, 0 at padding")}),
    Exercise("attention", "scaled dot-product attention", "derivations/attention.md", "ATT-4 .. ATT-8",
             "ScaledDotProductAttention", [
        ("padding mask, S = 5 != T = 4", _attention(4, 5, 2, padding_keep(_ids([[3, 4, 5, 6, 7], [3, 4, 5]]), PAD))),
        ("causal mask and padding, T = S = 4", _attention(4, 4, 2, padding_keep(_ids([[3, 4, 5, 6], [3, 4]]), PAD)
                                                          & causal_keep(4, np))),
        ("a query row masked everywhere", _attention(3, 4, 2, _keep([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 0, 1]]))),
        ("T = 1, one head", _attention(1, 4, 1, None)),
    ], {"v": ("ATT-5", "dv = A^T dout"), "q": ("ATT-7", "dq = dscores k, dscores from (ATT-4) and (ATT-6)"),
        "k": ("ATT-8", "dk = dscores^T q, dscores from (ATT-4) and (ATT-6)")}),
    Exercise("layernorm", "layer normalisation", "derivations/layernorm.md", "LN-5, LN-6, LN-7", "LayerNorm", [
        ("(B,T,D) = (2,3,6)", _one_input(lambda c: _seeded(c(6)), (2, 3, 6))),
        ("T = 1, rows with mean 100", _one_input(lambda c: _seeded(c(6)), (3, 1, 6), offset=100.0)),
    ], {"x": ("LN-7", "dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dout * gamma"),
        "gamma": ("LN-6", "dgamma = dout * xhat, summed over every row"),
        "beta": ("LN-5", "dbeta = dout summed over every row")}, train="LayerNorm"),
    Exercise("embedding", "embedding lookup, repeated ids", "derivations/embedding.md", "EMB-2", "Embedding", [
        ("repeated ids (3 three times, 6 twice)", _embedding([[3, 3, 5, 3], [6, 0, 0, 6]])),
        ("T = 1, one id in every row", _embedding([[2], [2], [5]])),
    ], {"W": ("EMB-2", "dW[v] = the sum of dout over every position whose id is v")}, train="Embedding"),
    Exercise("dropout", "inverted dropout, mask frozen", "derivations/dropout.md", "DO-2", "Dropout", [
        ("p = 0.5, mask frozen", _dropout(0.5, (3, 4))),
        ("p = 0.1, (B,T,D) = (2,3,4)", _dropout(0.1, (2, 3, 4))),
        ("evaluation (training=False): y = x", _dropout(0.5, (3, 4), training=False)),
    ], {"x": ("DO-2", "dx = dout * the cached scaled mask (dout itself in evaluation)")}),
    Exercise("feedforward", "the position-wise feed-forward network", "derivations/feedforward.md",
             "FFN-4, FFN-5, FFN-6", "FeedForward", [
        ("(B,T,D) = (2,3,4), F = 7", _one_input(lambda c: _seeded(c(4, 7)), (2, 3, 4))),
        ("T = 1", _one_input(lambda c: _seeded(c(4, 7)), (2, 1, 4))),
    ], {"x": ("FFN-6", "dx = dh W1^T, dh = da where h > 0 (FFN-5)"),
        "W1": ("FFN-6", "dW1 = x^T dh, summed over every row"), "b1": ("FFN-6", "db1 = dh summed over every row"),
        "W2": ("FFN-4", "dW2 = a^T dout, summed over every row"), "b2": ("FFN-4", "db2 = dout summed over every row")},
             train="FeedForward"),
    Exercise("multihead", "multi-head attention, self then cross", "derivations/multihead.md", "MHA-4 .. MHA-8",
             "MultiHeadAttention", [
        ("self-attention, causal mask and padding, 2 heads", _multihead(2, 4, rows=[[3, 4, 5, 6], [3, 4]])),
        ("self-attention, one head", _multihead(1, 4, rows=[[3, 4, 5, 6], [3, 4, 5]])),
        ("cross-attention, S = 5 != T = 3, padding", _multihead(2, 3, S=5, rows=[[3, 4, 5, 6, 7], [3, 4]])),
    ], {"x": ("MHA-8", "self-attention: dx = dQ Wq^T + dK Wk^T + dV Wv^T; cross: dQ Wq^T (MHA-6)"),
        "memory": ("MHA-7", "dmemory = dK Wk^T + dV Wv^T"),
        "Wo": ("MHA-4", "dWo = concat^T dout"), "bo": ("MHA-4", "dbo = dout summed over every row"),
        "Wq": ("MHA-6", "dWq = x^T dQ"), "bq": ("MHA-6", "dbq = dQ summed over every row"),
        "Wk": ("MHA-7", "dWk = kv^T dK"), "bk": ("MHA-7", "dbk = dK summed over every row (near 0: softmax "
                                                           "ignores a constant added to a row)"),
        "Wv": ("MHA-7", "dWv = kv^T dV"), "bv": ("MHA-7", "dbv = dV summed over every row")},
             train="MultiHeadAttention"),
    Exercise("sublayer", "the sublayer connection, post and pre", "derivations/sublayer.md", "RES-3, RES-4, RES-5",
             "SublayerConnection", [
        ("post-norm, dropout frozen", _one_input(lambda c: _freeze(c(6, 0.3, "post", np.random.default_rng(0))),
                                                 (2, 3, 6))),
        ("pre-norm, dropout frozen", _one_input(lambda c: _freeze(c(6, 0.3, "pre", np.random.default_rng(0))),
                                                (2, 3, 6))),
    ], {"x": ("RES-4", "dx = the residual's gradient dz plus the sublayer path's, through (RES-3) and (RES-5)"),
        "sublayer": ("RES-4", "the sublayer's gradient is its backward of dropout.backward(dz)"),
        "norm": ("RES-3", "post: norm.backward(dout) first; pre: norm.backward of the sublayer's dx (RES-5)")}),
    Exercise("encoder_layer", "one encoder layer", "derivations/stacks.md", "ENC-1 (RES-3 .. RES-5 inside)",
             "EncoderLayer", [
        ("post-norm, dropout frozen, padding", _encoder_layer("post")),
        ("pre-norm, dropout frozen, padding", _encoder_layer("pre")),
    ], {"x": ("ENC-1", "the feed-forward connection reversed first, then the attention's, each residual "
                       "gradient added to its sublayer's"),
        "self_attn": ("ENC-1", "self_attn.backward of the first connection's dropout gradient"),
        "ffn": ("ENC-1", "ffn.backward of the second connection's dropout gradient"),
        "norm1": ("ENC-1", "norm1 reversed inside the first connection (RES-3 post, RES-5 pre)"),
        "norm2": ("ENC-1", "norm2 reversed inside the second connection (RES-3 post, RES-5 pre)")}),
    Exercise("gru", "the GRU step and backpropagation through time", "derivations/gru.md", "GRU-6 .. GRU-14", "GRU", [
        ("one step, the second row padded", _gru_step),
        ("BPTT over T = 4, the second row padded after two steps", _gru_bptt),
    ], {"x": ("GRU-13", "dx = dgx W^T at every step"), "h": ("GRU-7", "dh: the z*h path (GRU-7), r*h (GRU-10), "
                                                                      "U_z U_r (GRU-12) and padding (GRU-6)"),
        "h0": ("GRU-14", "the dh the first step passes back, after every later step's"),
        "W": ("GRU-13", "dW = x^T dgx, summed over the batch and every step"),
        "U": ("GRU-12", "dU: (GRU-12) for the z and r blocks, (GRU-9) for the n block, over every step"),
        "b": ("GRU-13", "db = dgx summed over the batch and every step")}, methods=("step_backward", "backward")),
    Exercise("transformer", "the whole model's backward order", "derivations/model.md", "TF-6 .. TF-9", "Transformer", [
        ("post-norm, learned positions, dropout frozen, padding", _transformer),
    ], {"generator": ("TF-6", "generator.backward(dlogits) comes first"),
        "decoder": ("TF-7", "decoder.backward(dy) -> (dy, dmemory)"),
        "tgt_embed": ("TF-8", "the target embedding's gradient is sqrt(D) times the positional layer's dx"),
        "tgt_pos": ("TF-8", "tgt_pos.backward of tgt_drop.backward(dy)"),
        "src_embed": ("TF-8", "the source embedding's gradient is sqrt(D) times the positional layer's dx"),
        "src_pos": ("TF-9", "src_pos.backward of src_drop.backward of the encoder's dx"),
        "encoder": ("TF-9", "encoder.backward(dmemory)")}),
]}
