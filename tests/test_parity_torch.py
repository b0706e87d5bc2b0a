"""Parity with PyTorch, an implementation nobody here wrote: the same weights loaded into
PyTorch's own nn.TransformerEncoderLayer / nn.TransformerDecoderLayer stacks, nn.Embedding and
nn.Linear give, in float64, the same logits, loss and gradient of every parameter.

Needs the optional `parity` extra (`pip install torch==2.13.0`); skipped without it.

The mapping. torch's Linear computes x W^T, ours x W, so every torch weight is our W transposed.
MultiheadAttention packs the three input projections: in_proj_weight (3D, D) = [Wq^T; Wk^T; Wv^T],
in_proj_bias = [bq; bk; bv], out_proj = (Wo^T, bo); its heads are the same column blocks of width
D/H. Embeddings are scaled by sqrt(D) and the positional table added before the stacks, as
Figure 1 does; pre-norm stacks end with a LayerNorm (the `norm` of nn.TransformerEncoder/Decoder).
torch runs in training mode with dropout 0, which keeps it off its inference fast path.
"""

import math

import numpy as np
import pytest

from npformer import Transformer, cross_entropy
from npformer.backend import to_device, to_numpy
from npformer.layers.positional import sinusoid_table

torch = pytest.importorskip("torch")
nn = torch.nn

PAD = 0
TOLERANCE = 1e-6
# Padding in every row but the first; no row is all padding (torch gives NaN there, we give 0).
SRC = np.array([[3, 4, 5, 6, 7, 8], [5, 3, 9, 4, 0, 0], [4, 10, 0, 0, 0, 0]])        # (3,6)
TGT = np.array([[1, 3, 4, 5, 6, 7, 2], [1, 6, 5, 2, 0, 0, 0], [1, 2, 0, 0, 0, 0, 0]])  # (3,7)  BOS .. EOS
TGT_IN, TGT_OUT = TGT[:, :-1], TGT[:, 1:]                                            # T = 6


def t64(a):
    return torch.tensor(np.array(to_numpy(a), dtype=np.float64))


class TorchReference(nn.Module):
    """Figure 1 from PyTorch's own parts, in float64."""

    def __init__(self, model):
        super().__init__()
        cfg = model.cfg
        D, H, F, N = cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.n_layers
        pre = cfg.norm == "pre"
        common = dict(dim_feedforward=F, dropout=0.0, activation="relu", layer_norm_eps=1e-5, batch_first=True,
                      norm_first=pre, dtype=torch.float64)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, H, **common), N,
                                             norm=nn.LayerNorm(D, dtype=torch.float64) if pre else None,
                                             enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(D, H, **common), N,
                                             norm=nn.LayerNorm(D, dtype=torch.float64) if pre else None)
        self.src_embed = nn.Embedding(cfg.src_vocab, D, dtype=torch.float64)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab, D, dtype=torch.float64)
        self.generator = nn.Linear(D, cfg.tgt_vocab, dtype=torch.float64)
        if cfg.positional == "learned":
            self.src_pos = nn.Parameter(torch.zeros(cfg.max_len, D, dtype=torch.float64))
            self.tgt_pos = nn.Parameter(torch.zeros(cfg.max_len, D, dtype=torch.float64))
        else:
            table = torch.tensor(sinusoid_table(cfg.max_len, D))
            self.register_buffer("src_pos", table)
            self.register_buffer("tgt_pos", table.clone())
        if cfg.tie_embeddings:
            self.tgt_embed.weight = self.src_embed.weight        # torch's own tying: one Parameter
            self.generator.weight = self.src_embed.weight        # (V,D) as torch's Linear wants it
        self.scale = math.sqrt(D)
        self.names = self._load(model)

    def _load(self, model):
        """Copy our parameters in; returns {our name: (torch tensor, rows of it, transposed?)}."""
        ours = model.parameters()
        names = {}

        def put(name, tensor, rows=None, transpose=False):
            value = t64(ours[name])
            value = value.T if transpose else value              # our (in,out) -> torch's (out,in)
            with torch.no_grad():
                (tensor if rows is None else tensor[rows]).copy_(value)
            names[name] = (tensor, rows, transpose)

        put("src_embed.W", self.src_embed.weight)
        if "tgt_embed.W" in ours:
            put("tgt_embed.W", self.tgt_embed.weight)
            put("generator.W", self.generator.weight, transpose=True)
        put("generator.b", self.generator.bias)
        if "src_pos.P" in ours:
            put("src_pos.P", self.src_pos)
            put("tgt_pos.P", self.tgt_pos)
        D = model.cfg.d_model
        for stack, torch_stack in (("encoder", self.encoder), ("decoder", self.decoder)):
            for i, layer in enumerate(torch_stack.layers):
                prefix = f"{stack}.layers.{i}."
                attns = [("self_attn", layer.self_attn)] + ([("cross_attn", layer.multihead_attn)]
                                                             if stack == "decoder" else [])
                for sub, mha in attns:
                    for j, w in enumerate("qkv"):
                        rows = slice(j * D, (j + 1) * D)
                        put(f"{prefix}{sub}.W{w}", mha.in_proj_weight, rows, transpose=True)
                        put(f"{prefix}{sub}.b{w}", mha.in_proj_bias, rows)
                    put(f"{prefix}{sub}.Wo", mha.out_proj.weight, transpose=True)
                    put(f"{prefix}{sub}.bo", mha.out_proj.bias)
                put(f"{prefix}ffn.W1", layer.linear1.weight, transpose=True)
                put(f"{prefix}ffn.b1", layer.linear1.bias)
                put(f"{prefix}ffn.W2", layer.linear2.weight, transpose=True)
                put(f"{prefix}ffn.b2", layer.linear2.bias)
                for n in (1, 2, 3) if stack == "decoder" else (1, 2):
                    norm = getattr(layer, f"norm{n}")
                    put(f"{prefix}norm{n}.gamma", norm.weight)
                    put(f"{prefix}norm{n}.beta", norm.bias)
            if torch_stack.norm is not None:
                put(f"{stack}.norm.gamma", torch_stack.norm.weight)
                put(f"{stack}.norm.beta", torch_stack.norm.bias)
        missing = set(ours) - set(names)
        assert not missing, f"parameters the reference does not hold: {sorted(missing)}"
        return names

    def forward(self, src, tgt):
        S, T = src.shape[1], tgt.shape[1]
        src_pad, tgt_pad = src == PAD, tgt == PAD                # True = ignore, torch's convention
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True above the diagonal: the future
        x = self.src_embed(src) * self.scale + self.src_pos[:S]
        memory = self.encoder(x, src_key_padding_mask=src_pad)
        y = self.tgt_embed(tgt) * self.scale + self.tgt_pos[:T]
        y = self.decoder(y, memory, tgt_mask=causal, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad)
        return self.generator(y)

    def gradient(self, name):
        tensor, rows, transpose = self.names[name]
        g = tensor.grad if rows is None else tensor.grad[rows]
        return (g.T if transpose else g).numpy()                 # back to our (in,out) layout


# The key bias bk adds q.bk to every score of a row, which softmax ignores: its true gradient is
# exactly 0 and both sides hold rounding noise near 1e-17, so every tensor's difference is
# measured against max(its largest entry, FLOOR).
FLOOR = 1e-9


def relative(a, b):
    """The worst difference, relative to the tensor's largest entry (see FLOOR)."""
    return float(np.abs(a - b).max() / max(np.abs(b).max(), FLOOR))


CONFIGS = [("post", "sinusoidal", False, 0.0), ("pre", "sinusoidal", False, 0.1),
           ("post", "learned", True, 0.1), ("pre", "learned", True, 0.0)]


@pytest.mark.parametrize("norm,positional,tie,smoothing", CONFIGS,
                         ids=[f"{n}-{p}-{'tied' if t else 'untied'}-ls{s}" for n, p, t, s in CONFIGS])
def test_logits_loss_and_every_gradient_match_pytorch(xp, norm, positional, tie, smoothing):
    torch.manual_seed(0)
    model = Transformer(dict(src_vocab=11, tgt_vocab=11 if tie else 9, d_model=16, n_heads=4, d_ff=24, n_layers=2,
                             dropout=0.0, max_len=10, norm=norm, positional=positional, tie_embeddings=tie),
                        seed=0, dtype="float64", backend=xp)
    rng = np.random.default_rng(1)
    for name, p in model.parameters().items():                   # move norms and biases off their 1 and 0
        if name.rsplit(".", 1)[-1] in ("gamma", "beta", "b", "bq", "bk", "bv", "bo", "b1", "b2"):
            p += to_device(rng.uniform(-0.5, 0.5, p.shape), model.xp)
    ref = TorchReference(model).train()

    logits = model.forward(SRC, TGT_IN)
    loss, dlogits = cross_entropy(logits, TGT_OUT, PAD, smoothing)
    model.zero_grad()
    model.backward(dlogits)

    ref_logits = ref(torch.tensor(SRC), torch.tensor(TGT_IN))
    ref_loss = nn.functional.cross_entropy(ref_logits.reshape(-1, ref_logits.shape[-1]),
                                           torch.tensor(TGT_OUT).reshape(-1), ignore_index=PAD,
                                           label_smoothing=smoothing)
    ref_loss.backward()

    errors = {"logits": relative(to_numpy(logits), ref_logits.detach().numpy()),
              "loss": abs(loss - ref_loss.item()) / abs(ref_loss.item())}
    for name, g in model.gradients().items():
        errors[name] = relative(to_numpy(g), ref.gradient(name))
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOLERANCE, f"{worst}: relative error {errors[worst]:.2e}"
    assert len(errors) == len(model.parameters()) + 2
