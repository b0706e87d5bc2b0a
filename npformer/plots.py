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


def _grid(plt, weights, row_labels, col_labels, title):
    """One heatmap per (layer, head): weights (layers, H, queries, keys)."""
    n_layers, n_heads = weights.shape[:2]
    cell = 0.28 * max(len(col_labels), 4)
    fig, axes = plt.subplots(n_layers, n_heads, figsize=(cell * n_heads + 1, cell * n_layers + 0.6),
                             squeeze=False, layout="constrained")
    for i in range(n_layers):
        for h in range(n_heads):
            ax = axes[i, h]
            ax.imshow(weights[i, h], cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=7)
            ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
            ax.set_title(f"layer {i} head {h}", fontsize=8)
    fig.suptitle(title)
    return fig


def plot_attention(model, src, out_dir, prefix="attention"):
    """Heatmaps of encoder self-, decoder self- and cross-attention for every layer and head.
    Writes three PNG files into out_dir and returns their paths."""
    plt = _pyplot()
    maps = attention_maps(model, src)
    src_l, tgt_l = _labels(maps["src"]), _labels(maps["tgt_in"])
    kinds = [("encoder", src_l, src_l, "encoder self-attention (query rows, key columns)"),
             ("decoder", tgt_l, tgt_l, "decoder self-attention (causal)"),
             ("cross", tgt_l, src_l, "cross-attention: decoder queries over source keys")]
    paths = []
    for kind, rows, cols, title in kinds:
        fig = _grid(plt, maps[kind], rows, cols, title)
        paths.append(_save(fig, os.path.join(out_dir, f"{prefix}_{kind}.png")))
        plt.close(fig)
    return paths


# ----------------------------------------------------------------------------- the fixed pictures

def plot_positional(path, max_len=64, d_model=128):
    """The sinusoidal positional-encoding matrix P (positions x dimensions)."""
    plt = _pyplot()
    P = sinusoid_table(max_len, d_model)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    im = ax.imshow(P, cmap="RdBu", aspect="auto", vmin=-1, vmax=1)
    ax.set_xlabel("dimension i (even: sin, odd: cos)")
    ax.set_ylabel("position")
    ax.set_title(f"sinusoidal positional encoding, d_model={d_model}")
    fig.colorbar(im, ax=ax)
    _save(fig, path)
    plt.close(fig)
    return path


def plot_masks(path, batch=None, pad_id=0):
    """The padding, causal and combined masks for a padded batch (white = may attend)."""
    plt = _pyplot()
    if batch is None:
        batch = [[5, 6, 7, 8, 9], [5, 6, 7, 0, 0], [5, 6, 0, 0, 0]]
    ids = np.asarray(batch)
    T = ids.shape[1]
    pad = np.broadcast_to(to_numpy(padding_keep(to_device(ids, "numpy"), pad_id))[:, 0], (len(ids), T, T))
    causal = to_numpy(causal_keep(T, "numpy"))[0, 0]
    both = to_numpy(target_keep(to_device(ids, "numpy"), pad_id))[:, 0]
    fig, axes = plt.subplots(len(ids), 3, figsize=(7.5, 2.5 * len(ids)), squeeze=False,
                             layout="constrained")
    for b in range(len(ids)):
        labels = _labels(ids[b])
        for j, (m, name) in enumerate([(pad[b], "padding"), (causal, "causal"), (both[b], "padding & causal")]):
            ax = axes[b, j]
            ax.imshow(m, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks(range(T), labels, fontsize=7)
            ax.set_yticks(range(T), labels, fontsize=7)
            ax.set_title(f"row {b}: {name}", fontsize=8)
    fig.suptitle("masks: query rows, key columns; white = may attend")
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
