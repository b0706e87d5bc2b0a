"""Pictures a learner wants to see: attention maps, the positional-encoding matrix, the masks,
the learning-rate schedule, and a run's loss and exact-match curves.

Every function writes PNG files with matplotlib's Agg backend, so they work with no screen.
matplotlib is optional: `pip install -e ".[plot]"`.
"""

import json
import os

import numpy as np

from npformer.backend import to_device, to_numpy
from npformer.errors import InputError, NpformerError
from npformer.layers.positional import sinusoid_table
from npformer.masks import causal_keep, padding_keep, target_keep

SPECIAL = {0: "<pad>", 1: "<s>", 2: "</s>"}


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise NpformerError("plots need matplotlib: install it with `pip install -e \".[plot]\"`.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _labels(tokens):
    return [SPECIAL.get(int(t), str(int(t))) for t in tokens]


def _save(fig, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    fig.clf()
    return path


# ----------------------------------------------------------------------------- attention

def attention_maps(model, src, max_len=None, bos_id=1, eos_id=2):
    """Decode one source sequence greedily, then run the decoder over its own output once more
    (teacher forcing, no dropout) and collect every layer's attention weights.

    src: a 1-D sequence of token ids. Returns a dict with the tokens and the weights, each
    a host array (layers, H, queries, keys): "encoder" (S x S), "decoder" (T x T), "cross" (T x S).
    """
    src = np.asarray(src)
    if src.ndim != 1 or src.size == 0:
        raise InputError("attention maps take one non-empty sequence of token ids.")
    max_len = max_len or min(model.cfg.max_len - 1, 2 * src.size + 2)
    out = model.greedy_decode(src[None], max_len=max_len, bos_id=bos_id, eos_id=eos_id)[0]
    ends = np.flatnonzero(out == eos_id)
    out = out[: ends[0] + 1] if ends.size else out
    tgt_in = np.concatenate([[bos_id], out[:-1]]) if out.size else np.array([bos_id])
    model.forward(src[None], tgt_in[None], training=False)
    enc = [to_numpy(layer.self_attn.weights)[0] for layer in model.encoder.layers]
    dec = [to_numpy(layer.self_attn.weights)[0] for layer in model.decoder.layers]
    cross = [to_numpy(layer.cross_attn.weights)[0] for layer in model.decoder.layers]
    return {"src": src, "tgt_in": tgt_in, "output": out,
            "encoder": np.stack(enc), "decoder": np.stack(dec), "cross": np.stack(cross)}


def _grid(plt, weights, row_labels, col_labels, title, query="query", key="key", note=None):
    """One heatmap per (layer, head): weights (layers, H, queries, keys), one shared colour bar,
    token labels on both axes, the axes named on the outer panels, and a note under the title."""
    n_layers, n_heads = weights.shape[:2]
    cell = 0.28 * max(len(col_labels), 4)
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(cell * n_heads + 1.8, cell * n_layers + 1.0),
                             squeeze=False, layout="constrained")
    for i in range(n_layers):
        for h in range(n_heads):
            ax = axes[i, h]
            im = ax.imshow(weights[i, h], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=7)
            ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
            ax.set_title(f"layer {i} head {h}", fontsize=8)
            if i == n_layers - 1:
                ax.set_xlabel(key, fontsize=8)
            if h == 0:
                ax.set_ylabel(query, fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.8, label="attention weight (each row sums to 1)")
    fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=10)
    return fig


# What to look for in each kind of map: (title, query axis, key axis, note).
ATTENTION_KINDS = {
    "encoder": ("encoder self-attention", "query: source token", "key: source token",
                "each row is where one source token reads; no single position is the answer here"),
    "decoder": ("decoder self-attention (causal)", "query: decoder input", "key: decoder input",
                "nothing above the diagonal: position t reads only positions up to t"),
    "cross": ("cross-attention: decoder queries over source keys", "query: decoder input",
              "key: source token",
              "reverse: the t-th output reads source position S-1-t, the anti-diagonal (copy: the diagonal)"),
}


def draw_attention(plt, maps, kind):
    """The figure of one kind of map ("encoder", "decoder" or "cross") from attention_maps()."""
    src_l, tgt_l = _labels(maps["src"]), _labels(maps["tgt_in"])
    rows, cols = {"encoder": (src_l, src_l), "decoder": (tgt_l, tgt_l), "cross": (tgt_l, src_l)}[kind]
    title, query, key, note = ATTENTION_KINDS[kind]
    return _grid(plt, maps[kind], rows, cols, title, query, key, note)


def plot_attention(model, src, out_dir, prefix="attention"):
    """Heatmaps of encoder self-, decoder self- and cross-attention for every layer and head.
    Writes three PNG files into out_dir and returns their paths."""
    plt = _pyplot()
    maps = attention_maps(model, src)
    paths = []
    for kind in ATTENTION_KINDS:
        fig = draw_attention(plt, maps, kind)
        paths.append(_save(fig, os.path.join(out_dir, f"{prefix}_{kind}.png")))
        plt.close(fig)
    return paths


def plot_alignment(model, src, path, src_labels=None, out_labels=None, bos_id=1, eos_id=2):
    """The cross-attention of one greedily decoded source, as one PNG at `path`: a Transformer's
    every decoder layer and head attending over the source, or the one map of the RNN with
    attention. Rows are the output tokens (each row the attention that produced it), columns
    the source tokens. src_labels(ids), out_labels(ids): the tick labels (default: the ids).
    Returns (path, the output ids)."""
    plt = _pyplot()
    src = np.asarray(src)
    if hasattr(model, "attention"):                              # the RNN with attention
        out = model.greedy_decode(src[None], max_len=2 * src.size + 4, bos_id=bos_id, eos_id=eos_id)[0]
        ends = np.flatnonzero(out == eos_id)
        out = out[: ends[0] + 1] if ends.size else out
        weights = to_numpy(model.weights)[0, :len(out)][None, None]  # (1,1,T,S)
    elif hasattr(model.decoder, "layers"):                      # the Transformer
        maps = attention_maps(model, src, bos_id=bos_id, eos_id=eos_id)
        out, weights = maps["output"], maps["cross"]            # (layers,H,T,S)
    else:
        raise InputError("this model reads one context vector, so it has no attention to show.")
    fig = _grid(plt, weights, (out_labels or _labels)(out), (src_labels or _labels)(src),
                "cross-attention: each output token's weights over the source")
    _save(fig, path)
    plt.close(fig)
    return path, out


# ----------------------------------------------------------------------------- the fixed pictures

# Figure 1 of the paper, as boxes: (x centre, y centre, text, colour). Colours follow the paper's.
_ATTN, _FFN, _NORM, _EMB, _OUT = "#fcd9b6", "#c6e2f5", "#f7f3b5", "#f6c6d0", "#d9cdee"
_ENCODER_BOXES = [(3.0, 4.3, "Multi-Head Attention", _ATTN), (3.0, 5.3, "Add & Norm", _NORM),
                  (3.0, 6.5, "Feed Forward", _FFN), (3.0, 7.5, "Add & Norm", _NORM)]
_DECODER_BOXES = [(7.0, 4.3, "Masked Multi-Head Attention", _ATTN), (7.0, 5.3, "Add & Norm", _NORM),
                  (7.0, 6.5, "Multi-Head Attention", _ATTN), (7.0, 7.5, "Add & Norm", _NORM),
                  (7.0, 8.7, "Feed Forward", _FFN), (7.0, 9.7, "Add & Norm", _NORM)]


def draw_figure1(plt, n_layers=2):
    """Figure 1 of the paper (the encoder on the left, the decoder on the right), with the label
    of the equation each part computes: forward TF-1..TF-5, backward TF-6..TF-9 (derivations/model.md)."""
    from matplotlib.patches import FancyBboxPatch

    fig, ax = plt.subplots(figsize=(8.6, 9.6), layout="constrained")
    ax.set_xlim(-0.6, 10.6)
    ax.set_ylim(-0.3, 14.2)
    ax.axis("off")

    def box(x, y, text, colour, w=3.0, h=0.62):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
                                    fc=colour, ec="black", lw=0.8))
        ax.text(x, y, text, ha="center", va="center", fontsize=9)

    def arrow(x0, y0, x1, y1, style="-|>", **kw):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle=style, lw=0.9, color="black", shrinkA=0, shrinkB=0, **kw))

    def note(x, y, text, ha="left", colour="#444444"):
        ax.text(x, y, text, ha=ha, va="center", fontsize=8, color=colour)

    for x, side, name, tf in ((3.0, "left", "Encoder", "TF-3"), (7.0, "right", "Decoder", "TF-4")):
        top = 8.1 if name == "Encoder" else 10.3
        ax.add_patch(FancyBboxPatch((x - 1.85, 3.75), 3.7, top - 3.75, boxstyle="round,pad=0.02,rounding_size=0.2",
                                    fc="#f2f2f2", ec="#888888", lw=0.8))
        nx = x - 2.05 if side == "left" else x + 2.05
        note(nx, (3.75 + top) / 2, f"{n_layers}x", ha="right" if side == "left" else "left", colour="black")
        back = "TF-9" if name == "Encoder" else "TF-7"
        note(nx, (3.75 + top) / 2 - 0.45, f"{name}\nforward {tf}\nbackward {back}",
             ha="right" if side == "left" else "left")
    for x, y, text, colour in _ENCODER_BOXES + _DECODER_BOXES:
        box(x, y, text, colour)
    for boxes in (_ENCODER_BOXES, _DECODER_BOXES):
        for (x, y0, *_), (_, y1, *_) in zip(boxes, boxes[1:]):
            arrow(x, y0 + 0.31, x, y1 - 0.31)

    # Inputs, embeddings and positions (TF-1, TF-2; backward TF-8).
    for x, inputs, emb in ((3.0, "Inputs (source ids)", "Input Embedding"),
                           (7.0, "Outputs (shifted right)", "Output Embedding")):
        ax.text(x, 0.0, inputs, ha="center", va="center", fontsize=9)
        arrow(x, 0.25, x, 0.99)
        box(x, 1.3, emb + "  x sqrt(D)", _EMB)
        arrow(x, 1.61, x, 2.38)
        ax.add_patch(plt.Circle((x, 2.6), 0.22, fc="white", ec="black", lw=0.8))
        ax.text(x, 2.6, "+", ha="center", va="center", fontsize=11)
        arrow(x, 2.82, x, 3.99)
    note(1.3, 1.3, "TF-1\nbackward\nTF-8", ha="right")
    note(8.7, 1.3, "TF-1\nbackward\nTF-8")
    note(2.65, 2.6, "Positional\nEncoding,\ndropout: TF-2", ha="right")
    note(7.35, 2.6, "Positional\nEncoding,\ndropout: TF-2")

    # Residual branches: around each sublayer, into its Add & Norm (RES-1, RES-2).
    for boxes in (_ENCODER_BOXES, _DECODER_BOXES):
        for (x, y, text, _), (_, y_norm, *_) in zip(boxes, boxes[1:]):
            if text != "Add & Norm":
                side = x - 1.72
                ax.plot([x, side, side], [y - 0.5, y - 0.5, y_norm], color="black", lw=0.8)
                arrow(side, y_norm, x - 1.5, y_norm)
    note(0.35, 4.3, "residual\nbranch:\nRES-1,\nRES-2", ha="center")

    # The encoder output m feeds every decoder layer's cross-attention as keys and values.
    ax.plot([3.0, 3.0, 5.0, 5.0], [8.1, 8.45, 8.45, 6.5], color="black", lw=0.9)
    arrow(5.0, 6.5, 5.5, 6.5)
    note(0.9, 9.05, "m, the encoder output: keys and values of\nevery decoder layer (DEC-2 sums its gradient)")

    # The generator and the softmax.
    arrow(7.0, 10.3, 7.0, 10.99)
    box(7.0, 11.3, "Linear", _OUT)
    note(8.65, 11.3, "TF-5\nbackward TF-6")
    arrow(7.0, 11.61, 7.0, 12.09)
    box(7.0, 12.4, "Softmax", "#cdeccd")
    note(8.65, 12.4, "with the loss: CE")
    arrow(7.0, 12.71, 7.0, 13.3)
    ax.text(7.0, 13.55, "Output Probabilities", ha="center", va="center", fontsize=9)
    ax.set_title("The Transformer (Figure 1 of the paper), each part with its equation label")
    return fig


def plot_positional(path, max_len=64, d_model=128):
    """The sinusoidal positional-encoding matrix P (positions x dimensions)."""
    plt = _pyplot()
    P = sinusoid_table(max_len, d_model)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    im = ax.imshow(P, cmap="RdBu", aspect="auto", vmin=-1, vmax=1)
    ax.set_xlabel("dimension i (even: sin, odd: cos)")
    ax.set_ylabel("position")
    ax.set_title(f"sinusoidal positional encoding, d_model={d_model}")
    fig.colorbar(im, ax=ax, label="value added to the embedding")
    _save(fig, path)
    plt.close(fig)
    return path


def mask_panels(batch=None, pad_id=0):
    """The masks of a padded batch, host boolean arrays (B, T, T) with True = may attend:
    (ids, [("padding", ...), ("causal", ...), ("padding & causal", ...)])."""
    if batch is None:
        batch = [[5, 6, 7, 8, 9], [5, 6, 7, 0, 0], [5, 6, 0, 0, 0]]
    ids = np.asarray(batch)
    B, T = ids.shape
    pad = np.broadcast_to(to_numpy(padding_keep(to_device(ids, "numpy"), pad_id))[:, 0], (B, T, T))  # (B,T,T)
    causal = np.broadcast_to(to_numpy(causal_keep(T, "numpy"))[0], (B, T, T))                      # (B,T,T)
    both = to_numpy(target_keep(to_device(ids, "numpy"), pad_id))[:, 0]                              # (B,T,T)
    return ids, [("padding", pad), ("causal", causal), ("padding & causal", both)]


def draw_masks(plt, batch=None, pad_id=0):
    """The padding, causal and combined masks of a padded batch, one row of panels per sequence."""
    from matplotlib.colors import ListedColormap

    ids, panels = mask_panels(batch, pad_id)
    B, T = ids.shape
    two_tone = ListedColormap(["black", "white"])                # False = hidden, True = may attend
    fig, axes = plt.subplots(B, 3, figsize=(8.2, 2.5 * B + 0.4), squeeze=False, layout="constrained")
    for b in range(B):
        labels = _labels(ids[b])
        for j, (name, m) in enumerate(panels):
            ax = axes[b, j]
            im = ax.imshow(m[b], cmap=two_tone, vmin=0, vmax=1)
            ax.set_xticks(range(T), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(T), labels, fontsize=7)
            ax.set_title(f"sequence {b}: {name}", fontsize=8)
            if b == B - 1:
                ax.set_xlabel("key", fontsize=8)
            if j == 0:
                ax.set_ylabel("query", fontsize=8)
    bar = fig.colorbar(im, ax=axes, shrink=0.4, ticks=[0.25, 0.75])
    bar.ax.set_yticklabels(["hidden", "may attend"])
    fig.suptitle("masks: query rows, key columns; white = may attend")
    return fig


def plot_masks(path, batch=None, pad_id=0):
    """The padding, causal and combined masks for a padded batch (white = may attend)."""
    plt = _pyplot()
    fig = draw_masks(plt, batch, pad_id)
    _save(fig, path)
    plt.close(fig)
    return path


def plot_schedule(path, steps, rates, title="learning-rate schedule"):
    """A learning-rate schedule, given its values at `steps`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, rates)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
    return path


def read_metrics(path):
    """The records of a run's metrics.jsonl, one dict per evaluation."""
    if not os.path.exists(path):
        raise InputError(f"no metrics file at {path}.")
    records = []
    with open(path) as f:
        lines = f.readlines()
    for n, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if n == len(lines) and not line.endswith("\n"):  # cut off by an interrupted write: skipped
                    continue
                raise InputError(f"{path} line {n} is not JSON.") from None
    if not records:
        raise InputError(f"{path} holds no evaluations yet.")
    return records


def plot_metrics(path, metrics_path):
    """Training loss and held-out exact match against steps, from a run's metrics.jsonl."""
    plt = _pyplot()
    records = read_metrics(metrics_path)
    steps = [r["step"] for r in records]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    losses = [(r["step"], r["train_loss"]) for r in records if r.get("train_loss") is not None]
    if losses:
        ax1.plot(*zip(*losses))
        ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (mean since the last evaluation)")
    for key, label in [("exact_match", "exact match"), ("token_accuracy", "token accuracy")]:
        if all(key in r for r in records):
            ax2.plot(steps, [r[key] for r in records], label=label)
    ax2.set_xlabel("step")
    ax2.set_ylim(0, 1.02)
    ax2.set_title("held-out set, greedy decoding")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)
    return path
