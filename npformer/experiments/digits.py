"""Self-attention on images: the encoder-only classifier on scikit-learn's 8x8 digits.

    python -m npformer.experiments.digits            (needs: pip install -e ".[images,plot]")

The 1,797 images ship inside scikit-learn (nothing is downloaded). A fixed, stratified split
keeps 20% for testing. Each variant (patches or pixels as tokens, class token or mean
pooling, with or without positional encodings) trains the VisionTransformer of
model/vision.py with Adam from several seeds; a logistic regression on the same pixels is the
baseline without attention. Reports held-out accuracy as mean and range over seeds, and draws
the class token's attention over the image. Each finished run is kept in --runs as JSON and
read back when the command runs again, so it can be stopped and resumed.
Writes docs/experiments/digits.md, digits.json and digits_attention.png.
"""

import argparse
import json
import os
import re
import sys

import numpy as np

from npformer.backend import get_backend, to_numpy
from npformer.errors import NpformerError
from npformer.experiments import DOCS, command, Clock, machine, markdown_table, pyplot, show_spread, spread, write_outputs
from npformer.loss import cross_entropy
from npformer.model.vision import VisionConfig, VisionTransformer
from npformer.train.optim import Adam, clip_grad_norm, learning_rate


def load_digits_split(test_fraction=0.2, seed=0):
    """(x_train, y_train, x_test, y_test): images (N,8,8,1) scaled to [0,1], labels (N,) ints."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise NpformerError("the digits experiment needs scikit-learn: pip install -e \".[images]\".") from None
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
    adam = Adam(model.arena, betas=(0.9, 0.98), eps=1e-9)
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
            clip_grad_norm(model.arena.grads, 1.0)
            adam.step(learning_rate(step, "constant", lr, warmup, cfg.d_model))
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


VARIANTS = {                                                     # name -> what differs from VisionConfig()
    "2x2 patches, class token": dict(patch=2, pool="cls"),
    "2x2 patches, mean pooling": dict(patch=2, pool="mean"),
    "2x2 patches, class token, no positions": dict(patch=2, pool="cls", positional="none"),
    "pixels (1x1), class token": dict(patch=1, pool="cls"),
}


def logistic_baseline(x_train, y_train, x_test, y_test):
    """Multinomial logistic regression on the 64 raw pixels (scikit-learn, L2 penalty C=1,
    lbfgs to convergence): a linear classifier with no attention and no notion of position
    beyond each pixel's own weight. Deterministic, so one run."""
    from sklearn.linear_model import LogisticRegression
    clf = LogisticRegression(max_iter=5000)
    clf.fit(x_train.reshape(len(x_train), -1), y_train)
    return (float(clf.score(x_train.reshape(len(x_train), -1), y_train)),
            float(clf.score(x_test.reshape(len(x_test), -1), y_test)))


def one_run(path, name, seed, epochs, data, backend, keep_model=False):
    """Train one variant from one seed, or read its result from path if an earlier invocation
    finished it with the same epochs. Returns (result dict, model or None)."""
    if os.path.exists(path) and not keep_model:
        with open(path) as f:
            done = json.load(f)
        if done.get("epochs") == epochs:
            return done, None
    x_train, y_train, x_test, y_test = data
    cfg = VisionConfig(**VARIANTS[name])
    with Clock() as clock:
        model, history = train(cfg, x_train, y_train, epochs, seed=seed, backend=backend)
    result = {"name": name, "seed": seed, "epochs": epochs, "config": cfg.to_dict(),
              "test_accuracy": float((model.predict(x_test) == y_test).mean()),
              "train_accuracy": float((model.predict(x_train) == y_train).mean()),
              "parameters": sum(int(p.size) for p in model.parameters().values()),
              "wall_s": clock.s, "loss": history}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(path + ".tmp", path)                              # a stopped run leaves no half-written result
    return result, model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--quick", action="store_true", help="2 epochs, to check the command works")
    ap.add_argument("--runs", default="runs/experiments/digits", help="where each finished run is kept")
    ap.add_argument("--out", default=DOCS, help="where the page and plot go (default docs/experiments)")
    ap.add_argument("--backend", default=None)
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    seeds = [int(s) for s in args.seeds.split(",")]
    os.makedirs(args.out, exist_ok=True)

    data = load_digits_split()
    x_train, y_train, x_test, y_test = data
    print(f"digits: {len(y_train)} training, {len(y_test)} test images of 8x8x1")
    results = {name: [] for name in VARIANTS}
    for name in VARIANTS:
        for seed in seeds:
            print(f"{name}, seed {seed}", flush=True)
            path = os.path.join(args.runs, f"{re.sub('[^a-z0-9]+', '_', name.lower()).strip('_')}_seed{seed}.json")
            r, _ = one_run(path, name, seed, epochs, data, args.backend)
            results[name].append(r)
            print(f"  held-out accuracy {r['test_accuracy']:.4f} (train {r['train_accuracy']:.4f}), "
                  f"{r['wall_s']:.0f} s", flush=True)
    base_train, base_test = logistic_baseline(*data)
    print(f"logistic regression: held-out accuracy {base_test:.4f}")

    first = next(iter(VARIANTS))                                  # the picture: a model of the first variant, seed 0
    _, model = one_run(os.path.join(args.runs, "picture.json"), first, seeds[0], epochs, data, args.backend,
                       keep_model=True)
    show = np.arange(0, len(y_test), max(1, len(y_test) // 8))[:8]
    attention_figure(f"{args.out}/digits_attention.png", model, x_test[show], y_test[show],
                     model.predict(x_test[show]))

    rows = [["logistic regression on the 64 pixels (no attention)", "-", 64 * 10 + 10, "1 (deterministic)",
             f"{base_train:.3f}", f"{base_test:.3f}", "-"]]
    for name, rs in results.items():
        cfg = VisionConfig(**VARIANTS[name])
        rows.append([name, cfg.grid ** 2 + 1, rs[0]["parameters"], len(rs),
                     show_spread([r["train_accuracy"] for r in rs], 3),
                     show_spread([r["test_accuracy"] for r in rs], 3), show_spread([r["wall_s"] for r in rs])])
    n_test = len(y_test)
    acc = {name: spread([r["test_accuracy"] for r in rs]) for name, rs in results.items()}

    def compare(a, b):
        (ma, la, ha), (mb, lb, hb) = acc[a], acc[b]
        if la > hb:
            return f"{a} ({ma:.3f}) is above {b} ({mb:.3f}) in every seed"
        if ha < lb:
            return f"{a} ({ma:.3f}) is below {b} ({mb:.3f}) in every seed"
        return f"{a} ({ma:.3f}) and {b} ({mb:.3f}) overlap across seeds"
    names = list(VARIANTS)
    shows = [compare(names[2], names[0]) + ".", compare(names[3], names[0]) + ".", compare(names[1], names[0]) + "."]
    best = max(acc, key=lambda n: acc[n][0])
    shows.append(f"The logistic regression reaches {base_test:.3f}; the best variant's mean, {best}, is "
                 f"{acc[best][0]:.3f}, {'above' if acc[best][0] > base_test else 'below'} it by "
                 f"{abs(acc[best][0] - base_test) * n_test:.1f} test images on average.")
    quick = "\n**--quick run: two epochs only; these numbers are not results.**\n" if args.quick else ""
    page = f"""# Self-attention on images: 8x8 digits

Measured by `{command('digits', argv)}` ({machine()}).
{quick}
An image of 8 x 8 pixels and one channel becomes a sequence: 2 x 2 patches give 16 vectors of
4 numbers, single pixels give 64 vectors of 1 number. A linear map embeds each, a learned class
token is put in front, learned positions are added (except in the variant without them), and
the Transformer's encoder (the same `Encoder` as in the translation model, pre-norm, no mask)
reads the whole sequence. The class token's output (or the mean over the patches) goes through
LayerNorm and a linear head to the 10 classes. Derivation: [vision](../derivations/vision.md).

**Data**: scikit-learn's bundled `load_digits` (1,797 images), one fixed stratified split of
{len(y_train)} training and {n_test} test images (one test image is {100 / n_test:.2f} points of accuracy).
**Recipe**, the same for every variant: {epochs} epochs, batch 64, Adam (0.9, 0.98), learning
rate 1e-3 after 100 warm-up steps, gradient norm clipped at 1, dropout 0.1; d_model 64, 4 heads,
d_ff 128, 2 layers, GELU, float32. **Seeds** {", ".join(map(str, seeds))}: a seed fixes the initial
parameters, the order of the batches and the dropout masks; the split is the same for all.
Accuracies are the mean over seeds with the lowest and highest in brackets.

{markdown_table(["model", "sequence length", "parameters", "seeds", "train accuracy", "held-out accuracy", "seconds"], rows)}

![class token attention](digits_attention.png)

Top row: test images with their label and the model's prediction ({first}, seed {seeds[0]}).
Below: where the class token looks, in the first and in the last encoder layer (heads
averaged), each patch's weight drawn over its 2 x 2 pixels, each picture on its own colour
scale (bright = most attention). The class token has no content of its own; all it learns to
carry comes from the patches it attends to.

## What this shows

{" ".join(shows)}

## What it does not show

{n_test} test images and {len(seeds)} seeds: differences of a point or two are a few images, and one
split; nothing here says how these choices behave on larger images, where the patches, the
positions and the linear baseline may all rank differently.
"""
    raw = {"epochs": epochs, "seeds": seeds, "runs": results,
           "logistic_regression": {"train_accuracy": base_train, "test_accuracy": base_test}}
    print("wrote", write_outputs(args.out, "digits", page, raw))


if __name__ == "__main__":
    main()
