"""Every layer of the model, in small float64 shapes, as a gradient-check case.

Used by the test suite and by `npformer gradcheck`. Each case builds its layer and inputs
from fixed seeds, freezes every dropout mask, and checks every float input and every
parameter element by element.
"""

import numpy as np

from npformer.backend import default_rng, get_backend, to_device
from npformer.gradcheck import check_gradients
from npformer.layers import (Dropout, Embedding, FeedForward, LayerNorm, LearnedPositionalEncoding, Linear,
                             MultiHeadAttention, ScaledDotProductAttention, SinusoidalPositionalEncoding,
                             Softmax, SublayerConnection)
from npformer.masks import causal_keep, padding_keep, target_keep
from npformer.model.decoder import Decoder, DecoderLayer
from npformer.model.encoder import Encoder, EncoderLayer

F64 = "float64"
PAD = 0


class Case:
    """One gradient check: build(xp) -> (layer, inputs, forward, backward)."""

    def __init__(self, name, build):
        self.name = name
        self.build = build

    def run(self, backend=None, **options):
        xp = get_backend(backend)
        layer, inputs, forward, backward = self.build(xp)
        for _, sub in layer.named_layers():
            if isinstance(sub, Dropout):
                sub.freeze()
        tensors = dict(inputs)
        tensors.update(layer.parameters())
        layer.zero_grad()
        return check_gradients(self.name, forward, backward, tensors, layer.gradients(), **options)


def _arrays(xp, seed, **shapes):
    rng = np.random.default_rng(seed)
    return {k: to_device(rng.standard_normal(s), xp) for k, s in shapes.items()}


def _ids(xp, rows):
    """Token ids from lists padded with PAD to the longest: (B, L) on the backend."""
    L = max(len(r) for r in rows)
    return to_device(np.array([r + [PAD] * (L - len(r)) for r in rows]), xp)


def _single(name, make_layer, **shapes):
    """A layer with one float input x: forward(x) and backward(dout) -> dx."""
    def build(xp):
        layer = make_layer(xp)
        inputs = _arrays(xp, 1, **shapes)
        return layer, inputs, lambda: layer.forward(inputs["x"]), lambda d: {"x": layer.backward(d)}
    return Case(name, build)


def _rng():
    return np.random.default_rng(0)


def _embedding(xp):
    layer = Embedding(7, 4, _rng(), xp, F64)
    ids = _ids(xp, [[3, 3, 5, 3], [6, 0, 0, 6]])                 # repeated ids must accumulate
    return layer, {}, lambda: layer.forward(ids), lambda d: layer.backward(d) and {}


def _softmax(masked):
    def build(xp):
        layer = Softmax(xp, F64)
        inputs = _arrays(xp, 2, x=(2, 3, 5))
        keep = to_device(np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], bool), xp) if masked else None
        return layer, inputs, lambda: layer.forward(inputs["x"], keep), lambda d: {"x": layer.backward(d)}
    return build


def _sdpa(causal):
    def build(xp):
        layer = ScaledDotProductAttention(xp, F64)
        S = 4 if causal else 5
        inputs = _arrays(xp, 3, q=(2, 2, 4, 3), k=(2, 2, S, 3), v=(2, 2, S, 3))
        keys = _ids(xp, [[3, 4, 5, 6, 7][:S], [3, 4, 5]])
        keep = padding_keep(keys, PAD) & causal_keep(S, xp) if causal else padding_keep(keys, PAD)

        def backward(d):
            dq, dk, dv = layer.backward(d)
            return {"q": dq, "k": dk, "v": dv}
        return layer, inputs, lambda: layer.forward(inputs["q"], inputs["k"], inputs["v"], keep)[0], backward
    return build


def _mha_self(n_heads):
    def build(xp):
        layer = MultiHeadAttention(8, n_heads, _rng(), xp, F64)
        inputs = _arrays(xp, 4, x=(2, 4, 8))
        keep = target_keep(_ids(xp, [[3, 4, 5, 6], [3, 4]]), PAD)
        return layer, inputs, lambda: layer.forward(inputs["x"], keep), lambda d: {"x": layer.backward(d)}
    return build


def _mha_cross(xp):
    layer = MultiHeadAttention(8, 2, _rng(), xp, F64)
    inputs = _arrays(xp, 5, x=(2, 3, 8), memory=(2, 5, 8))       # S = 5 != T = 3
    keep = padding_keep(_ids(xp, [[3, 4, 5, 6, 7], [3, 4]]), PAD)

    def backward(d):
        dx, dm = layer.backward(d)
        return {"x": dx, "memory": dm}
    return layer, inputs, lambda: layer.forward(inputs["x"], keep, memory=inputs["memory"]), backward


def _sublayer(position):
    def build(xp):
        layer = Linear(6, 6, _rng(), xp, F64)                     # the sublayer; the connection's parts beside it
        layer.norm = LayerNorm(6, xp=xp, dtype=F64)
        layer.drop = Dropout(0.3, default_rng(xp, 0), xp, F64)
        conn = SublayerConnection(layer.norm, layer.drop, position)
        inputs = _arrays(xp, 6, x=(2, 3, 6))

        def forward():
            x = inputs["x"]
            return conn.output(x, layer.forward(conn.sublayer_input(x)))

        def backward(d):
            dx, ds = conn.backward_output(d)
            return {"x": dx + conn.backward_input(layer.backward(ds))}
        return layer, inputs, forward, backward
    return build


def _encoder(stack, norm, dropout=0.0):
    def build(xp):
        cls, args = (Encoder, (2,)) if stack else (EncoderLayer, ())
        layer = cls(*args, 8, 2, 12, dropout, _rng(), default_rng(xp, 0), norm, xp=xp, dtype=F64)
        inputs = _arrays(xp, 7, x=(2, 5, 8))
        keep = padding_keep(_ids(xp, [[3, 4, 5, 6, 7], [3, 4, 5]]), PAD)
        return layer, inputs, lambda: layer.forward(inputs["x"], keep), lambda d: {"x": layer.backward(d)}
    return build


def _decoder(stack, norm, dropout=0.0):
    def build(xp):
        cls, args = (Decoder, (2,)) if stack else (DecoderLayer, ())
        layer = cls(*args, 8, 2, 12, dropout, _rng(), default_rng(xp, 0), norm, xp=xp, dtype=F64)
        inputs = _arrays(xp, 8, y=(2, 3, 8), memory=(2, 5, 8))
        tgt_keep = target_keep(_ids(xp, [[1, 4, 5], [1, 4]]), PAD)
        src_keep = padding_keep(_ids(xp, [[3, 4, 5, 6, 7], [3, 4, 5]]), PAD)

        def backward(d):
            dy, dm = layer.backward(d)
            return {"y": dy, "memory": dm}
        return layer, inputs, lambda: layer.forward(inputs["y"], inputs["memory"], tgt_keep, src_keep), backward
    return build


CASES = [
    _single("Linear", lambda xp: Linear(4, 5, _rng(), xp, F64), x=(2, 3, 4)),
    Case("Embedding (repeated ids)", _embedding),
    _single("SinusoidalPositionalEncoding", lambda xp: SinusoidalPositionalEncoding(10, 5, xp, F64), x=(2, 3, 5)),
    _single("LearnedPositionalEncoding", lambda xp: LearnedPositionalEncoding(6, 4, _rng(), xp, F64), x=(2, 3, 4)),
    _single("Dropout (p=0.5, mask frozen)", lambda xp: Dropout(0.5, default_rng(xp, 0), xp, F64), x=(3, 4)),
    Case("Softmax", _softmax(False)),
    Case("Softmax (masked, a row masked everywhere)", _softmax(True)),
    Case("ScaledDotProductAttention (padding, S != T)", _sdpa(False)),
    Case("ScaledDotProductAttention (causal + padding)", _sdpa(True)),
    Case("MultiHeadAttention self (causal + padding)", _mha_self(2)),
    Case("MultiHeadAttention self (one head)", _mha_self(1)),
    Case("MultiHeadAttention cross (S != T, padding)", _mha_cross),
    _single("LayerNorm", lambda xp: LayerNorm(6, xp=xp, dtype=F64), x=(2, 3, 6)),
    _single("FeedForward (relu)", lambda xp: FeedForward(4, 7, _rng(), "relu", xp, F64), x=(2, 3, 4)),
    _single("FeedForward (gelu)", lambda xp: FeedForward(4, 7, _rng(), "gelu", xp, F64), x=(2, 3, 4)),
    Case("SublayerConnection post-norm (dropout frozen)", _sublayer("post")),
    Case("SublayerConnection pre-norm (dropout frozen)", _sublayer("pre")),
    Case("EncoderLayer post-norm", _encoder(False, "post")),
    Case("EncoderLayer pre-norm", _encoder(False, "pre")),
    Case("EncoderLayer post-norm (dropout frozen)", _encoder(False, "post", 0.2)),
    Case("DecoderLayer post-norm", _decoder(False, "post")),
    Case("DecoderLayer pre-norm (dropout frozen)", _decoder(False, "pre", 0.2)),
    Case("Encoder stack N=2 post-norm", _encoder(True, "post")),
    Case("Encoder stack N=2 pre-norm", _encoder(True, "pre")),
    Case("Decoder stack N=2 post-norm", _decoder(True, "post")),
    Case("Decoder stack N=2 pre-norm (dropout frozen)", _decoder(True, "pre", 0.2)),
]


def run_all(backend=None):
    """Every case's results, in order."""
    results = []
    for case in CASES:
        results.extend(case.run(backend))
    return results
