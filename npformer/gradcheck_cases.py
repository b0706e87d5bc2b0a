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


def _sdpa(causal, make_layer=lambda xp: ScaledDotProductAttention(xp, F64)):
    """Attention over q, k, v with a padding mask, S != T, or a causal mask; any score layer."""
    def build(xp):
        layer = make_layer(xp)
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


# ----------------------------------------------------------------------------- beyond the core
# Issue 7: the other attention scores, the GRU and the RNN encoder-decoder, the vision encoder.

from npformer.layers.gru import GRU  # noqa: E402
from npformer.layers.scores import (AdditiveAttention, CosineAttention, DotAttention,  # noqa: E402
                                    GeneralAttention, ScaledDotAttention)
from npformer.model.rnn import RNNConfig, RNNSeq2Seq  # noqa: E402
from npformer.model.vision import VisionConfig, VisionTransformer  # noqa: E402

SCORE_LAYERS = {
    "scaled_dot": lambda xp: ScaledDotAttention(xp, F64),
    "dot": lambda xp: DotAttention(xp, F64),
    "general": lambda xp: GeneralAttention(3, _rng(), xp, F64),
    "additive": lambda xp: AdditiveAttention(3, 3, 4, _rng(), xp, F64),
    "cosine": lambda xp: CosineAttention(True, 3.0, xp, F64),
    "cosine, fixed scale": lambda xp: CosineAttention(False, 3.0, xp, F64),
}


def _score(name, causal):
    """_sdpa's check for each score of layers/scores.py."""
    return _sdpa(causal, SCORE_LAYERS[name])


def _mha_score(score):
    def build(xp):
        layer = MultiHeadAttention(8, 2, _rng(), xp, F64, score)
        inputs = _arrays(xp, 4, x=(2, 4, 8))
        keep = target_keep(_ids(xp, [[3, 4, 5, 6], [3, 4]]), PAD)
        return layer, inputs, lambda: layer.forward(inputs["x"], keep), lambda d: {"x": layer.backward(d)}
    return build


def _gru(padded):
    """Four steps through time, a given initial state; with padding, row 1 stops after 2 steps."""
    def build(xp):
        layer = GRU(3, 5, _rng(), xp, F64)
        inputs = _arrays(xp, 9, x=(2, 4, 3), h0=(2, 5))
        keep = _ids(xp, [[3, 4, 5, 6], [3, 4]]) != PAD if padded else None

        def backward(d):
            dx, dh0 = layer.backward(d)
            return {"x": dx, "h0": dh0}
        return layer, inputs, lambda: layer.forward(inputs["x"], inputs["h0"], keep), backward
    return build


def _rnn(attention):
    """The whole RNN encoder-decoder on a padded batch: every parameter, through every step."""
    def build(xp):
        cfg = RNNConfig(7, 7, d_embed=3, d_hidden=4, attention=attention, d_attn=3)
        model = RNNSeq2Seq(cfg, seed=0, dtype=F64, backend=xp)
        src = _ids(xp, [[3, 4, 5, 6], [5, 6]])
        tgt = _ids(xp, [[1, 6, 5, 4, 3], [1, 6, 5]])
        return model, {}, lambda: model.forward(src, tgt), lambda d: model.backward(d) or {}
    return build


def _vision(pool, patch, positional, dropout):
    def build(xp):
        cfg = VisionConfig(image_size=4, channels=3 - patch, patch=patch, n_classes=6, d_model=8, n_heads=2,
                           d_ff=12, n_layers=1, dropout=dropout, pool=pool, positional=positional)
        model = VisionTransformer(cfg, seed=0, dtype=F64, backend=xp)
        inputs = _arrays(xp, 10, images=(3, 4, 4, 3 - patch))
        return (model, inputs, lambda: model.forward(inputs["images"]),
                lambda d: {"images": model.backward(d)})
    return build


BEYOND_CASES = (
    [Case(f"Attention score {name} (padding, S != T)", _score(name, False)) for name in SCORE_LAYERS]
    + [Case(f"Attention score {name} (causal + padding)", _score(name, True)) for name in ("additive", "cosine")]
    + [Case(f"MultiHeadAttention self, {score} score", _mha_score(score))
       for score in ("dot", "general", "additive", "cosine")]
    + [
        Case("GRU through 4 steps", _gru(False)),
        Case("GRU through 4 steps, padding carried", _gru(True)),
        Case("RNN encoder-decoder, one context vector", _rnn(None)),
        Case("RNN encoder-decoder, Bahdanau attention", _rnn("bahdanau")),
        Case("Vision encoder, 2x2 patches, class token", _vision("cls", 2, "learned", 0.0)),
        Case("Vision encoder, pixels, mean pool (dropout frozen)", _vision("mean", 1, "sinusoidal", 0.2)),
    ]
)
CASES += BEYOND_CASES

def run_all(backend=None):
    """Every case's results, in order."""
    results = []
    for case in CASES:
        results.extend(case.run(backend))
    return results


# ----------------------------------------------------------------------------- the whole model
# Issue 3: the Transformer of Figure 1 with its real loss, so cross_entropy's backward is checked too.

from npformer.backend import to_numpy  # noqa: E402
from npformer.gradcheck import EPS, ROUNDOFF, TOLERANCE, CheckResult  # noqa: E402
from npformer.layers import Layer  # noqa: E402
from npformer.loss import cross_entropy  # noqa: E402
from npformer.model.transformer import Transformer  # noqa: E402

# A heavily padded batch with S = 5 != T = 4. Each target row is BOS ... EOS: the decoder reads
# row[:-1] and is scored on row[1:].
MODEL_SRC = [[3, 4, 5, 6, 7], [5, 3], [4]]
MODEL_TGT = [[1, 3, 4, 5, 2], [1, 6, 2], [1, 2]]


def _loss_closures(xp, logits_of, targets, smoothing, backward_logits):
    """forward() -> the loss as a (1,) array; backward(dout) feeds dout * dloss/dlogits back."""
    last = {}

    def forward():
        loss, last["dlogits"] = cross_entropy(logits_of(), targets, PAD, smoothing)
        return xp.full((1,), loss)                               # (1,)

    def backward(dout):                                          # dout: (1,)
        return backward_logits(last["dlogits"] * dout[0])
    return forward, backward


def model_case_parts(xp, norm="post", positional="sinusoidal", tie=False, smoothing=0.0, dropout=0.0,
                     source=MODEL_SRC, seed=0):
    """A tiny float64 Transformer (D=8, 2 heads, F=16, 2 layers) on the padded batch above:
    (model, {}, forward, backward) with forward() -> the cross-entropy loss as a (1,) array."""
    xp = get_backend(xp)
    V = 9 if tie else 7
    model = Transformer(dict(src_vocab=9, tgt_vocab=V, d_model=8, n_heads=2, d_ff=16, n_layers=2, dropout=dropout,
                             max_len=6, norm=norm, positional=positional, tie_embeddings=tie, pad_id=PAD),
                        seed=seed, dtype=F64, backend=xp)
    src, tgt = _ids(xp, source), _ids(xp, MODEL_TGT)
    tgt_in, tgt_out = tgt[:, :-1], tgt[:, 1:]                    # (B,T), (B,T)
    forward, backward = _loss_closures(xp, lambda: model.forward(src, tgt_in), tgt_out, smoothing,
                                       lambda d: model.backward(d) or {})
    return model, {}, forward, backward


def check_all_parameters(name, model, forward, backward, seed=0, eps=EPS, tolerance=TOLERANCE):
    """One random direction v over every parameter at once: (L(p + eps v) - L(p - eps v)) / 2 eps
    against sum(grad * v), with L = forward() the loss (dout = 1). Dropout masks must be frozen."""
    xp = model.xp
    params = model.parameters()
    rng = np.random.default_rng(seed + 1)
    v = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    model.zero_grad()
    loss = float(forward()[0])
    backward(xp.ones((1,)))
    analytic = sum(float((to_numpy(g) * v[k]).sum()) for k, g in model.gradients().items())
    orig = {k: p.copy() for k, p in params.items()}

    def moved(sign):
        for k, p in params.items():                              # in place: tied views follow their owner
            p[...] = orig[k] + to_device(sign * eps * v[k], xp)
        return float(forward()[0])
    lp, lm = moved(+1), moved(-1)
    for k, p in params.items():
        p[...] = orig[k]
    numeric = (lp - lm) / (2 * eps)
    floor = ROUNDOFF * max(abs(loss), 1.0) / eps / tolerance     # as gradcheck._floor: rounding noise of L
    error = abs(numeric - analytic) / max(abs(numeric), abs(analytic), floor)
    n = sum(p.size for p in params.values())
    return CheckResult(name, "all parameters·v", (n,), error, (), numeric, analytic, tolerance)


class ModelCase(Case):
    """A whole-model check: a few entries of every parameter element by element (max_elements),
    plus one random direction through all parameters at once."""

    def run(self, backend=None, max_elements=2, **options):
        results = super().run(backend, max_elements=max_elements, **options)
        model, _, forward, backward = self.build(get_backend(backend))
        for _, sub in model.named_layers():
            if isinstance(sub, Dropout):
                sub.freeze()
        seed = options.get("seed", 0)
        return results + [check_all_parameters(self.name, model, forward, backward, seed,
                                               options.get("eps", EPS), options.get("tolerance", TOLERANCE))]


def _model(**options):
    return lambda xp: model_case_parts(xp, **options)


def _cross_entropy(xp):
    """The loss alone, every logit checked: padding and label smoothing, V = 5."""
    inputs = _arrays(xp, 11, logits=(3, 4, 5))
    targets = _ids(xp, [[1, 4, 3, 2], [4, 1], [3]])
    forward, backward = _loss_closures(xp, lambda: inputs["logits"], targets, 0.1, lambda d: {"logits": d})
    return Layer(xp, F64), inputs, forward, backward


MODEL_CASES = [
    Case("CrossEntropy (padding, label smoothing 0.1)", _cross_entropy),
    ModelCase("Transformer post, sinusoidal, untied, ls 0", _model()),
    ModelCase("Transformer pre, learned, tied, ls 0.1", _model(norm="pre", positional="learned", tie=True,
                                                              smoothing=0.1)),
    ModelCase("Transformer post, tied, ls 0.1, dropout frozen", _model(tie=True, smoothing=0.1, dropout=0.2)),
    ModelCase("Transformer pre, learned, all-pad, dropout frozen",
              _model(norm="pre", positional="learned", dropout=0.1, source=MODEL_SRC[:2] + [[]])),
]
CASES += MODEL_CASES
