"""Attention score functions compared on the reverse task.

    python -m npformer.experiments.scores

Part 1 trains the Transformer once per score function (scaled_dot, dot, general, additive,
cosine) with everything else equal, and reports the steps until held-out exact match reaches
99%. Part 2 trains dot against scaled_dot with one head, so d_k = d_model, a wider head.
Part 3 (no training) measures at initialisation how peaked the first layer's attention is
for growing d_k, with and without the 1/sqrt(d_k): the saturation the scaling prevents.
Writes docs/experiments/scores.md, scores.json and scores_curves.png.
"""

import argparse
import json
import os
import sys
from dataclasses import asdict

import numpy as np

from npformer.backend import to_numpy
from npformer.experiments import DOCS, command, machine, markdown_table, one_thread, pyplot, write_outputs
from npformer.layers.scores import SCORES
from npformer.model import Transformer, TransformerConfig
from npformer.train.loop import CHECKPOINT, METRICS, TrainConfig, Trainer
from npformer.train.tasks import Task, make_batch


def train_run(out_dir, reuse=False, **settings):
    """One training run to the target exact match (or the step limit); returns a summary dict
    read from the run's metrics (wall_s: the trainer's clock, evaluations included).
    reuse=True: a finished run already in out_dir with the same settings is read, not redone,
    and an interrupted one is resumed from its checkpoint."""
    cfg = TrainConfig(**settings)
    metrics = os.path.join(out_dir, METRICS)
    state = _state(out_dir, cfg) if reuse else None
    if state != "finished":
        if state == "unfinished":                                # an interrupted run of the same settings
            trainer = Trainer.resume(out_dir)
        else:
            os.makedirs(out_dir, exist_ok=True)
            if os.path.exists(metrics):
                os.remove(metrics)
            trainer = Trainer(cfg, out_dir=out_dir)
        trainer.run(progress=False, write=lambda line: print("   ", line, flush=True))
    with open(metrics) as f:
        curve = [json.loads(line) for line in f if line.strip()]
    last = curve[-1]
    return {"settings": settings, "reached": last["exact_match"] >= cfg.target, "step": last["step"],
            "exact_match": last["exact_match"], "wall_s": last["wall_s"],
            "s_per_step": last["wall_s"] / max(last["step"], 1),
            "curve": [(r["step"], r["exact_match"]) for r in curve]}


def _state(out_dir, cfg):
    """"finished" if out_dir holds a run of exactly cfg that stopped (at the target or the step
    limit), "unfinished" if it holds one that was interrupted (it resumes exactly), else None."""
    from npformer.model.checkpoint import read
    path = os.path.join(out_dir, CHECKPOINT)
    if not os.path.exists(path):
        return None
    meta = read(path)[0].get("meta", {})
    if meta.get("train") != asdict(cfg) or meta.get("step") is None:
        return None
    ev = meta.get("eval") or {}
    done = meta["step"] >= cfg.steps or ev.get("exact_match", 0) >= cfg.target
    return "finished" if done else "unfinished"


def saturation(d_ks=(16, 64, 256), n=64, seed=0):
    """At initialisation, one head of width d_k (d_model = d_k): the first encoder layer's
    attention on a batch of reverse-task sources. Returns rows of
    (d_k, score, mean largest weight, mean entropy / log(keys), mean |q.k| spread)."""
    task = Task("reverse", 10, 8, 16)
    batch = make_batch(task, task.sample(np.random.default_rng(seed), n))
    rows = []
    for d_k in d_ks:
        for score in ("dot", "scaled_dot"):
            cfg = TransformerConfig(src_vocab=task.vocab, tgt_vocab=task.vocab, d_model=d_k, n_heads=1,
                                    d_ff=4 * d_k, n_layers=1, dropout=0.0, attention_score=score)
            model = Transformer(cfg, seed=seed)
            model.forward(batch.src, batch.tgt_in, training=False)
            A = to_numpy(model.encoder.layers[0].self_attn.weights)[:, 0]  # (B,S,S)
            real = batch.src != 0                                        # (B,S)
            n_keys = real.sum(axis=1)                                    # (B,)
            mask = real[:, :, None] & real[:, None, :]                   # (B,S,S)
            peak = A.max(axis=-1)[real].mean()
            ent = -(np.where(mask, A * np.log(np.maximum(A, 1e-30)), 0)).sum(axis=-1)  # (B,S)
            rel_ent = (ent / np.log(n_keys)[:, None])[real].mean()
            # the spread of the scores themselves: recompute them from the cached q, k
            rows.append((d_k, score, float(peak), float(rel_ent)))
    return rows


def curves_figure(path, runs, title_1, title_2):
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, group, title in ((axes[0], "part1", title_1), (axes[1], "part2", title_2)):
        for r in runs:
            if r["group"] != group:
                continue
            steps, em = zip(*r["curve"])
            ax.plot(steps, em, marker=".", label=r["label"])
        ax.axhline(0.99, color="gray", lw=0.8, ls="--")
        ax.set_xlabel("training step")
        ax.set_ylabel("held-out exact match")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-model", type=int, default=TrainConfig.d_model)
    ap.add_argument("--d-ff", type=int, default=TrainConfig.d_ff)
    ap.add_argument("--steps", type=int, default=TrainConfig.steps, help="step limit per run")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-size", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="a few steps per run, to check the command works")
    ap.add_argument("--reuse", action="store_true", help="read runs already finished with the same settings "
                                                          "(and resume interrupted ones) instead of training anew")
    ap.add_argument("--runs", default=None, help="where the runs' checkpoints go (default runs/experiments/NAME)")
    ap.add_argument("--out", default=DOCS)
    ap.add_argument("--name", default="scores", help="file names of the page, its data and its plot")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    one_thread()
    steps, every = (20, 10) if args.quick else (args.steps, args.eval_every)
    common = dict(task="reverse", d_model=args.d_model, d_ff=args.d_ff, steps=steps, eval_every=every,
                  eval_size=args.eval_size, seed=0, schedule="constant",  # the schedule the tables were
                  replicas=1)                                    # measured with, on whole batches
    plan = [("part1", score, score, dict(attention_score=score)) for score in SCORES]
    plan += [("part2", f"{score}, d_k = {args.d_model}", f"{score}_1head", dict(attention_score=score, n_heads=1))
             for score in ("scaled_dot", "dot")]
    runs = []
    for group, label, name, extra in plan:
        print(f"{label}: training", flush=True)
        r = train_run(os.path.join(args.runs or f"runs/experiments/{args.name}", name), reuse=args.reuse,
                      **common, **extra)
        r.update(group=group, label=label)
        runs.append(r)
        print(f"  {'reached 99%' if r['reached'] else 'did not reach 99%'} at step {r['step']}, "
              f"exact match {r['exact_match']:.3f}, {r['wall_s']:.0f} s", flush=True)

    print("saturation at initialisation", flush=True)
    sat = saturation()

    os.makedirs(args.out, exist_ok=True)
    d_k = args.d_model // TrainConfig.n_heads
    curves_figure(os.path.join(args.out, f"{args.name}_curves.png"), runs,
                  f"each score, {TrainConfig.n_heads} heads (d_k = {d_k})",
                  f"dot vs scaled_dot, 1 head (d_k = {args.d_model})")

    def row(r):
        steps_99 = f"**{r['step']}**" if r["reached"] else f"not in {r['step']} (best {max(e for _, e in r['curve']):.3f})"
        return [r["label"], steps_99, f"{r['exact_match']:.3f}", f"{r['s_per_step']:.2f}", f"{r['wall_s']:.0f}"]
    header = ["score", "steps to 99% exact match", "final exact match", "s / step", "wall s"]
    table_1 = markdown_table(header, [row(r) for r in runs if r["group"] == "part1"])
    table_2 = markdown_table(header, [row(r) for r in runs if r["group"] == "part2"])
    table_3 = markdown_table(["d_k", "score", "mean largest weight", "entropy / log(keys)"],
                             [[dk, s, f"{p:.3f}", f"{e:.3f}"] for dk, s, p, e in sat])
    quick = "\n**--quick run: a few steps only; these numbers are not results.**\n" if args.quick else ""
    default = (args.d_model, args.d_ff) == (TrainConfig.d_model, TrainConfig.d_ff)
    size = ("`npformer train`'s defaults" if default else
            f"`npformer train`'s defaults but for the width (d_model {args.d_model} and d_ff {args.d_ff} "
            f"instead of {TrainConfig.d_model} and {TrainConfig.d_ff}, to save CPU time)")
    reused = (f"(With `--reuse` the runs were read from `{args.runs or 'runs/experiments/' + args.name}`, "
              "where the same settings had been trained before; the training columns come from those runs' "
              "metrics, the saturation table was measured by this invocation.)\n\n") if args.reuse else ""
    part1 = [r for r in runs if r["group"] == "part1"]
    part2 = {r["label"].split(",")[0]: r for r in runs if r["group"] == "part2"}
    reached = sorted((r for r in part1 if r["reached"]), key=lambda r: r["step"])
    notes, note_2 = [], ""
    if reached:
        notes.append("Reached 99%: " + ", ".join(f"{r['label']} at step {r['step']}" for r in reached) + ".")
    missed = [r for r in part1 if not r["reached"]]
    if missed:
        notes.append("Not within the limit: " + ", ".join(
            f"{r['label']} (best {max(e for _, e in r['curve']):.3f})" for r in missed) + ".")
    if {"dot", "scaled_dot"} <= set(part2):
        d, sd = part2["dot"], part2["scaled_dot"]
        def when(r):
            return f"reached 99% at step {r['step']}" if r["reached"] else \
                f"was at {r['exact_match']:.3f} after {r['step']} steps"
        note_2 = f"With one head of width {args.d_model}, scaled_dot {when(sd)} and dot {when(d)}."
    page = f"""# Attention score functions on the reverse task{"" if default else f", d_model {args.d_model}"}

Measured by `{command('scores', argv)}` ({machine()}).
{quick}
{reused}Everything but the score function is {size}: the reverse
task, 10 symbols, source lengths 1 to 16; d_model {args.d_model}, {TrainConfig.n_heads} heads,
d_ff {args.d_ff}, 2 + 2 layers, post-norm, dropout 0.1; batch 64, Adam, learning rate 1e-3 after
200 warm-up steps and then constant, clipping at 1; seed 0 for every run, so every run starts from the same
projections and sees the same batches. Held-out exact match (greedy decoding, {args.eval_size}
fixed sequences) is measured every {every} steps, and a run stops at 99% or after {steps} steps.
One seed per setting: differences of a few hundred steps are within what another seed could
change. The scores and their derivatives: [scores](../derivations/scores.md).

## Each score, {TrainConfig.n_heads} heads of d_k = {d_k}

{table_1}

{" ".join(notes)}

## dot vs scaled_dot with one wide head

The same model with one head, so each query and key has d_k = {args.d_model} components.

{table_2}

{note_2}

![training curves]({args.name}_curves.png)

## Why 1/sqrt(d_k): saturation at initialisation

No training: a freshly initialised model with one head of width d_k (d_model = d_k), the first
encoder layer's self-attention on 64 reverse-task sources of 8 to 16 symbols. If q and k have
components of variance about 1, q . k is a sum of d_k such products, with standard deviation
about sqrt(d_k); the softmax of scores that far apart is nearly one-hot, and its Jacobian
diag(a) - a a^T is then nearly zero, so almost no gradient reaches Wq and Wk. Dividing by
sqrt(d_k) keeps the spread near 1 whatever d_k is. "mean largest weight" is the largest
attention weight of a query (1/keys for uniform attention, 1 for one-hot); the entropy is
divided by its maximum, log(number of keys).

{table_3}
"""
    raw = {"runs": runs, "saturation": sat, "settings": common}
    print("wrote", write_outputs(args.out, args.name, page, raw))


if __name__ == "__main__":
    main()
