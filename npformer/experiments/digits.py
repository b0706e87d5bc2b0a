"""Self-attention on images: the encoder-only classifier on scikit-learn's 8x8 digits.

    python -m npformer.experiments.digits            (needs: pip install "npformer[images,plot]")

The 1,797 images ship inside scikit-learn (nothing is downloaded). A fixed, stratified split
keeps 20% for testing. Each run trains the VisionTransformer of model/vision.py with Adam,
reports held-out accuracy, and draws the class token's attention over the image.
Writes docs/experiments/digits.md, digits.json and digits_attention.png.
"""

import argparse
import sys
import os

import numpy as np

from npformer.backend import get_backend, to_numpy
from npformer.errors import NpformerError
from npformer.experiments import DOCS, command, Clock, machine, markdown_table, one_thread, pyplot, write_outputs
from npformer.loss import cross_entropy
from npformer.model.vision import VisionConfig, VisionTransformer
from npformer.train.optim import Adam, clip_grad_norm, learning_rate


def load_digits_split(test_fraction=0.2, seed=0):
    """(x_train, y_train, x_test, y_test): images (N,8,8,1) scaled to [0,1], labels (N,) ints."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NpformerError("the digits experiment needs scikit-learn: pip install \"npformer[images]\".") from None
    d = load_digits()
    x = (d.images / 16.0)[..., None]                             # (N,8,8,1)
    y = d.target.astype(np.int64)                                # (N,)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):                                          # stratified: the same share of every digit
        idx = np.flatnonzero(y == c)
        test[rng.choice(idx, int(round(test_fraction * len(idx))), replace=False)] = True
    return x[~test], y[~test], x[test], y[test]


def train(cfg, x_train, y_train, epochs, batch_size=64, lr=1e-3, warmup=100, seed=0, backend=None, log=print):
    """Train a VisionTransformer; returns (model, list of (epoch, train loss))."""
    xp = get_backend(backend)
    model = VisionTransformer(cfg, seed=seed, backend=xp)
    params, grads = model.parameters(), model.gradients()
    adam = Adam(params, betas=(0.9, 0.98), eps=1e-9)
    rng = np.random.default_rng(seed)
    step, history = 0, []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y_train))
        total, n = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            step += 1
            logits = model.forward(x_train[idx], training=True)  # (b,10)
            # the loss is the sequence loss with one "token" per image; no label is padding
            loss, dlogits = cross_entropy(logits[:, None, :], y_train[idx][:, None], pad_id=-1)
            model.zero_grad()
            model.backward(dlogits[:, 0, :])
            clip_grad_norm(grads, 1.0)
            adam.step(grads, learning_rate(step, "constant", lr, warmup, cfg.d_model))
            total, n = total + loss * len(idx), n + len(idx)
        history.append((epoch, total / n))
        if log and (epoch % 10 == 0 or epoch == epochs):
            log(f"  epoch {epoch:3d}  train loss {total / n:.4f}")
    return model, history


def attention_figure(path, model, images, labels, predicted):
    """For each image: the digit, and the class token's attention (last layer, heads averaged)
    over the patches, drawn at the image's resolution."""
    plt = pyplot()
    model.forward(images, training=False)
    maps = to_numpy(model.class_attention(-1)).mean(axis=1)     # (n,g,g)
    first = to_numpy(model.class_attention(0)).mean(axis=1)      # (n,g,g)
    p = model.cfg.patch
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.6 * n, 5.0))
    for j in range(n):
        axes[0, j].imshow(images[j, :, :, 0], cmap="gray_r")
        axes[0, j].set_title(f"{labels[j]} -> {predicted[j]}", fontsize=9)
        for row, m, name in ((1, first[j], "layer 1"), (2, maps[j], "last layer")):
            axes[row, j].imshow(np.kron(m, np.ones((p, p))), cmap="viridis")
            if j == 0:
                axes[row, j].set_ylabel(name, fontsize=9)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("class token's attention over the image (label -> prediction)", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="2 epochs, to check the command works")
    ap.add_argument("--out", default=DOCS, help="where the page and plot go (default docs/experiments)")
    ap.add_argument("--backend", default=None)
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    one_thread()
    os.makedirs(args.out, exist_ok=True)

    x_train, y_train, x_test, y_test = load_digits_split()
    print(f"digits: {len(y_train)} training, {len(y_test)} test images of 8x8x1")
    runs = [
        ("2x2 patches, class token", VisionConfig(patch=2, pool="cls")),
        ("2x2 patches, mean pooling", VisionConfig(patch=2, pool="mean")),
        ("pixels (1x1), class token", VisionConfig(patch=1, pool="cls")),
    ]
    rows, raw, best = [], {"epochs": epochs, "runs": []}, None
    for name, cfg in runs:
        print(f"{name}: {cfg.grid ** 2} tokens + class token, d_model {cfg.d_model}, {cfg.n_layers} layers")
        with Clock() as clock:
            model, history = train(cfg, x_train, y_train, epochs, backend=args.backend)
        acc_test = float((model.predict(x_test) == y_test).mean())
        acc_train = float((model.predict(x_train) == y_train).mean())
        n_params = sum(int(p.size) for p in model.parameters().values())
        print(f"  held-out accuracy {acc_test:.4f} (train {acc_train:.4f}), {clock.s:.0f} s")
        rows.append([name, cfg.grid ** 2 + 1, n_params, f"{acc_train:.3f}", f"**{acc_test:.3f}**", f"{clock.s:.0f}"])
        raw["runs"].append({"name": name, "config": cfg.to_dict(), "test_accuracy": acc_test,
                            "train_accuracy": acc_train, "wall_s": clock.s, "loss": history})
        if best is None and cfg.pool == "cls":
            best = model
    show = np.arange(0, len(y_test), max(1, len(y_test) // 8))[:8]
    attention_figure(f"{args.out}/digits_attention.png", best, x_test[show], y_test[show],
                     best.predict(x_test[show]))

    quick = "\n**--quick run: two epochs only; these numbers are not results.**\n" if args.quick else ""
    page = f"""# Self-attention on images: 8x8 digits

Measured by `{command('digits', argv)}` ({machine()}).
{quick}
An image of 8 x 8 pixels and one channel becomes a sequence: 2 x 2 patches give 16 vectors of
4 numbers, single pixels give 64 vectors of 1 number. A linear map embeds each, a learned class
token is put in front, learned positions are added, and the Transformer's encoder (the same
`Encoder` as in the translation model, pre-norm, no mask) reads the whole sequence. The class
token's output (or the mean over the patches) goes through LayerNorm and a linear head to the
10 classes. Derivation: [vision](../derivations/vision.md).

Data: scikit-learn's bundled `load_digits` (1,797 images), a fixed stratified split of
{len(y_train)} training and {len(y_test)} test images. Training: {epochs} epochs, batch 64, Adam
(0.9, 0.98), learning rate 1e-3 after 100 warm-up steps, gradient norm clipped at 1, dropout 0.1;
d_model 64, 4 heads, d_ff 128, 2 layers, GELU, float32, NumPy backend.

{markdown_table(["tokens", "sequence length", "parameters", "train accuracy", "held-out accuracy", "wall s"], rows)}

![class token attention](digits_attention.png)

Top row: test images with their label and the model's prediction. Below: where the class token
looks, in the first and in the last encoder layer (heads averaged), each patch's weight drawn
over its 2 x 2 pixels, each picture on its own colour scale (bright = most attention). The class
token has no content of its own; all it learns to carry comes from the patches it attends to.
"""
    print("wrote", write_outputs(args.out, "digits", page, raw))


if __name__ == "__main__":
    main()
