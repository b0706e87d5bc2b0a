"""The RNN encoder-decoder (one context vector; Bahdanau attention) against the Transformer.

    python -m npformer.experiments.rnn_vs_transformer

Trains the three models on the reverse task with source lengths 1 to 64, with one recipe
(`npformer train`'s, dropout 0 for every model, since the GRU models have none), the same
width, batches and step budget, from several seeds, and with two ways of drawing lengths:
uniform, and "long" (half of the sources at the longest length, so the last positions are
not rare). Then reports, as mean and range over seeds,
  - held-out exact match by source length,
  - wall time of one training step (forward + backward) against length, with every BLAS thread,
  - argmax swapped in for the softmax at test time, in models trained with softmax.
Each run is kept in --runs (one folder per model, sampling and seed); the command reads the
finished runs and resumes an interrupted one, so it can be stopped and started again.
Writes docs/experiments/rnn_vs_transformer.md, .json, and rnn_vs_transformer.png.
"""

import argparse
import os
import sys
import time

import numpy as np

from npformer.backend import blas_threads, to_numpy
from npformer.experiments import (DOCS, command, how_many, machine, markdown_table, overlaps, pyplot, show_spread,
                                  spread, words, write_outputs)
from npformer.experiments.scores import train_run
from npformer.layers.scores import hard_attention
from npformer.loss import cross_entropy
from npformer.model import load
from npformer.train.loop import CHECKPOINT, evaluate
from npformer.train.tasks import PAD, Task, make_batch

MODELS = ("transformer", "rnn-attention", "rnn")
LABELS = {"transformer": "Transformer", "rnn-attention": "GRU + Bahdanau attention",
          "rnn": "GRU, one context vector"}
LENGTHS = (4, 8, 16, 32, 48, 56, 64)
SAMPLINGS = ("uniform", "long")


def by_length(model, lengths, n, hard=None):
    """Held-out exact match for sources of exactly each length (n fixed sequences per length).
    hard: None (softmax), or "all" / "cross" (argmax weights in those attention layers)."""
    out = {}
    for L in lengths:
        task = Task("reverse", 10, L, L)
        sources = task.sample(np.random.default_rng(2_000_000 + L), n)   # apart from training and the loop's set
        if hard is None:
            out[L] = evaluate(model, task, sources)["exact_match"]
        else:
            with hard_attention(model, hard):
                out[L] = evaluate(model, task, sources)["exact_match"]
    return out


def peak_weight(model, L, n, where="cross"):
    """How peaked the trained model's softmax attention is on sources of length L: the mean,
    over real queries, of the largest weight (1 = one-hot, 1/keys = uniform). For the
    Transformer, teacher-forced, averaged over the heads of the cross-attention (where="cross")
    or of every attention layer (where="all"); for the RNN, over greedy decoding's steps."""
    task = Task("reverse", 10, L, L)
    batch = make_batch(task, task.sample(np.random.default_rng(2_000_000 + L), n))
    if not hasattr(model, "decoder") or not hasattr(model.decoder, "layers"):      # the RNN
        model.greedy_decode(batch.src, max_len=L + 1)
        A = to_numpy(model.weights)[:, :L + 1]                   # (B,L+1,S)  no padding: every row has L + 1 steps
        return float(A.max(axis=-1).mean())
    model.forward(batch.src, batch.tgt_in, training=False)
    peaks = []
    for name, layer in model.named_layers():
        if name.endswith("attn") and (where == "all" or name.endswith("cross_attn")):
            A = to_numpy(layer.weights)                          # (B,H,T,S); no padding at one length
            peaks.append(A.max(axis=-1).mean())
    return float(np.mean(peaks))


def step_time(model, L, batch_size=64, repeats=5):
    """Wall time of one forward + backward on a batch of sources of length L: the fastest of
    `repeats` (on a shared machine the minimum is the least disturbed measurement)."""
    task = Task("reverse", 10, L, L)
    batch = make_batch(task, task.sample(np.random.default_rng(L), batch_size))
    times = []
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        logits = model.forward(batch.src, batch.tgt_in, training=True)
        _, dlogits = cross_entropy(logits, batch.tgt_out, pad_id=PAD)
        model.zero_grad()
        model.backward(dlogits)
        if i:                                                    # the first call warms caches up
            times.append(time.perf_counter() - t0)
    return min(times)


def figure(path, accuracy, timing, lengths, seeds):
    """Left two: exact match by length, one thin line per seed, for each way of drawing lengths.
    Right: step time against length. One legend below the three."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    colours = dict(zip(MODELS, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, sampling in zip(axes[:2], SAMPLINGS):
        for name in MODELS:
            for seed in seeds:
                acc = accuracy.get((name, sampling, seed))
                if acc is not None:
                    ax.plot(lengths, [acc[L] for L in lengths], marker=".", lw=1, color=colours[name], alpha=0.8)
        ax.set_xlabel("source length")
        ax.set_ylabel("held-out exact match")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"trained on lengths 1-{lengths[-1]}, drawn {SAMPLING_TEXT[sampling]}\n(one line per seed)",
                     fontsize=9)
        ax.set_xticks(lengths)
    ax = axes[2]
    for name, t in timing.items():
        ax.plot(list(t), [1000 * v for v in t.values()], marker="o", color=colours[name])
    ax.set_xlabel("source (and target) length")
    ax.set_ylabel("ms per training step (batch 64)")
    ax.set_title("wall time of forward + backward", fontsize=9)
    ax.set_xticks(lengths)
    handles = [plt.Line2D([], [], color=colours[name], marker="o", label=LABELS[name]) for name in MODELS]
    fig.legend(handles=handles, loc="lower center", ncol=len(MODELS), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


SAMPLING_TEXT = {"uniform": "uniformly", "long": "half at the longest length"}


def ahead(a, b, lengths):
    """Where two models' exact match by length is told apart by the seeds: (the lengths where a's
    lowest seed is above b's highest, where b's lowest is above a's highest, where they overlap);
    a and b map a length to (mean, lowest, highest)."""
    a_ahead = [L for L in lengths if a[L] and b[L] and a[L][1] > b[L][2]]
    b_ahead = [L for L in lengths if a[L] and b[L] and b[L][1] > a[L][2]]
    return a_ahead, b_ahead, [L for L in lengths if overlaps(a[L], b[L])]


def at_lengths(lengths):
    return "L=" + words(map(str, lengths))


def findings(summary, models, samplings, lengths):
    """The sentences the seeds' ranges support, read from summary[(model, sampling)][L] =
    (mean, lowest, highest) exact match: (the numbers at the longest length, the comparisons)."""
    last = lengths[-1]
    numbers, shows = [], []
    for sampling in samplings:
        parts = [f"{LABELS[name]} {m[0]:.3f} ({m[1]:.3f}-{m[2]:.3f})" for name in models
                 if (m := summary[name, sampling][last])]
        numbers.append(f"At L={last}, trained on lengths drawn {SAMPLING_TEXT[sampling]}: " + ", ".join(parts) + ".")
        if {"transformer", "rnn-attention"} <= set(models):
            tf, att = summary["transformer", sampling], summary["rnn-attention", sampling]
            tf_ahead, att_ahead, tie = ahead(tf, att, lengths)
            parts = []
            if tf_ahead:
                parts.append(f"the Transformer's lowest seed is above the GRU + attention's highest at {at_lengths(tf_ahead)}")
            if att_ahead:
                parts.append(f"the GRU + attention's lowest seed is above the Transformer's highest at {at_lengths(att_ahead)}")
            if tie:
                parts.append(f"the Transformer's and the GRU + attention's ranges overlap at {at_lengths(tie)}")
            if parts:
                shows.append(f"Lengths drawn {SAMPLING_TEXT[sampling]}: " + "; ".join(parts) + ".")
    if "transformer" in models and set(SAMPLINGS) <= set(samplings):
        u, g = summary["transformer", "uniform"][last], summary["transformer", "long"][last]
        if u and g:
            verdict = ("higher, and the seeds' ranges do not overlap: consistent with the drop at the longest "
                       "lengths coming from how rarely the last positions are seen" if g[1] > u[2] else
                       "not clearly different (the ranges overlap)" if overlaps(u, g) else "lower")
            shows.append(f"Drawing half of the lengths at the longest, the Transformer's exact match at L={last} is "
                         f"{g[0]:.3f} against {u[0]:.3f}: {verdict}.")
    if "rnn" in models:
        m = summary["rnn", samplings[0]]
        gone = [L for i, L in enumerate(lengths) if all(m[k] and m[k][2] < 0.05 for k in lengths[i:])]
        if gone:
            text = (f"The GRU with one context vector, whose decoder sees the source only through one vector, is "
                    f"below 0.05 in every seed from L={gone[0]} on")
            over = [set(ahead(summary[n, samplings[0]], m, lengths)[0])       # each attention model's lead
                    for n in ("transformer", "rnn-attention") if n in models]
            above = [L for L in lengths[lengths.index(gone[0]):] if over and all(L in o for o in over)]
            if above:
                text += (f"; at {at_lengths(above)} the lowest seed of each attention model is above its highest")
            shows.append(text + ".")
    return numbers, shows


def step_times(timing, L):
    """One sentence comparing the models' training-step times at length L, fastest first."""
    order = sorted(timing, key=lambda n: timing[n][L])
    fast = timing[order[0]][L]
    parts = [f"{LABELS[n]} {1000 * timing[n][L]:.0f} ms" + ("" if n == order[0] else f" ({timing[n][L] / fast:.1f}x)")
             for n in order]
    return f"A training step at L={L} on this CPU: " + ", ".join(parts) + "."


def plateaued(curve, window=4):
    """Did a run stop improving? True if the best exact match of its last `window` evaluations
    is within 0.01 of its best before them (or it reached its target)."""
    ems = [e for _, e in curve]
    if len(ems) <= window:
        return False
    return max(ems[-window:]) <= max(ems[:-window]) + 0.01


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d-model", type=int, default=64, help="Transformer width; the RNNs' embedding, "
                                                             "hidden and attention width")
    ap.add_argument("--max-len", type=int, default=64, help="longest source length trained and tested")
    ap.add_argument("--steps", type=int, default=12000, help="step budget per run (the same for every model)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-size", type=int, default=200, help="held-out sequences, per length too")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--samplings", default=",".join(SAMPLINGS))
    ap.add_argument("--quick", action="store_true", help="a few steps per model, to check the command works")
    ap.add_argument("--runs", default="runs/experiments/rnn_vs_transformer", help="where each run is kept")
    ap.add_argument("--out", default=DOCS)
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    models = args.models.split(",")
    samplings = args.samplings.split(",")
    steps, every, max_len = (20, 10, 8) if args.quick else (args.steps, args.eval_every, args.max_len)
    lengths = [L for L in LENGTHS if L <= max_len] if not args.quick else [2, 4, 8]
    common = dict(task="reverse", min_len=1, max_len=max_len, d_model=args.d_model, d_ff=4 * args.d_model,
                  dropout=0.0, steps=steps, eval_every=every, eval_size=args.eval_size, target=0.995,
                  replicas=2)
    accuracy, hard, peaks, trained, params = {}, {}, {}, {}, {}
    for sampling in samplings:
        for name in models:
            for seed in seeds:
                key = (name, sampling, seed)
                print(f"{LABELS[name]}, lengths {sampling}, seed {seed}", flush=True)
                run_dir = os.path.join(args.runs, f"{name}_{sampling}_seed{seed}")
                trained[key] = train_run(run_dir, model=name, lengths=sampling, seed=seed, **common)
                model = load(os.path.join(run_dir, CHECKPOINT))
                params[name] = sum(int(p.size) for p in model.parameters().values())
                accuracy[key] = by_length(model, lengths, args.eval_size)
                print(f"  exact match by length {accuracy[key]}", flush=True)
                if name == "transformer":
                    hard[key + ("cross",)] = by_length(model, lengths, args.eval_size, "cross")
                    hard[key + ("all",)] = by_length(model, lengths, args.eval_size, "all")
                    peaks[key + ("cross",)] = {L: peak_weight(model, L, args.eval_size, "cross") for L in lengths}
                elif name == "rnn-attention":
                    hard[key + ("all",)] = by_length(model, lengths, args.eval_size, "all")
                    peaks[key + ("all",)] = {L: peak_weight(model, L, args.eval_size) for L in lengths}
    threads = blas_threads()
    timing = {}
    for name in models:                                          # step time of a fresh model: no training needed
        model = load(os.path.join(args.runs, f"{name}_{samplings[0]}_seed{seeds[0]}", CHECKPOINT))
        timing[name] = {L: step_time(model, L) for L in lengths}
        print(f"  {name}: s per step by length {timing[name]}", flush=True)

    os.makedirs(args.out, exist_ok=True)
    figure(os.path.join(args.out, "rnn_vs_transformer.png"), accuracy, timing, lengths, seeds)
    Ls = [f"L={L}" for L in lengths]

    def over_seeds(table, name, sampling, L, extra=()):
        return [table[(name, sampling, s) + extra][L] for s in seeds if (name, sampling, s) + extra in table]

    acc_rows = []
    for sampling in samplings:
        for name in models:
            runs = [trained[(name, sampling, s)] for s in seeds]
            acc_rows.append([LABELS[name], sampling, f"{params[name]:,}",
                             show_spread([r["step"] for r in runs]),
                             f"{sum(plateaued(r['curve']) or r['reached'] for r in runs)} of {len(runs)}",
                             show_spread([r["wall_s"] for r in runs])]
                            + [show_spread(over_seeds(accuracy, name, sampling, L), 3) for L in lengths])
    seq_steps = {"transformer": lambda L: "4 layers", "rnn-attention": lambda L: f"{2 * L + 1}",
                 "rnn": lambda L: f"{2 * L + 1}"}
    first, last = lengths[0], lengths[-1]
    time_rows = [[LABELS[n]] + [f"{1000 * timing[n][L]:.0f}" for L in lengths]
                 + [f"{timing[n][last] / timing[n][first]:.1f}x", seq_steps[n](last)] for n in timing]
    hard_rows = []
    for sampling in samplings[:1]:
        for name in models:
            wheres = {"transformer": ("cross", "all"), "rnn-attention": ("all",)}.get(name, ())
            if not wheres:
                continue
            hard_rows.append([LABELS[name], "softmax (as trained)"]
                             + [show_spread(over_seeds(accuracy, name, sampling, L), 3) for L in lengths])
            for where in wheres:
                place = {"cross": "cross-attention only", "all": "every attention"}[where]
                if name != "transformer":
                    place = "the attention"
                hard_rows.append([LABELS[name], f"argmax in {place}"]
                                 + [show_spread(over_seeds(hard, name, sampling, L, (where,)), 3) for L in lengths])

    summary = {(name, sampling): {L: spread(over_seeds(accuracy, name, sampling, L)) for L in lengths}
               for sampling in samplings for name in models}
    numbers, shows = findings(summary, models, samplings, lengths)
    lessons = "\n".join("- " + text for text in shows + [step_times(timing, last)])
    unplateaued = [f"{LABELS[k[0]]} ({k[1]}, seed {k[2]})" for k, r in trained.items()
                   if not (plateaued(r["curve"]) or r["reached"])]
    quick = "\n**--quick run: a few steps only; these numbers are not results.**\n" if args.quick else ""
    page = f"""# The RNN encoder-decoder against the Transformer

Measured by `{command('rnn_vs_transformer', argv)}` ({machine()}).
{quick}
Three models learn to reverse sequences of 1 to {max_len} symbols (10 symbols):

- **Transformer**: d_model {args.d_model}, 4 heads, d_ff {4 * args.d_model}, 2 + 2 layers.
- **GRU + Bahdanau attention** (`--model rnn-attention`): embedding, hidden state and attention
  width {args.d_model}; a fresh context vector per output step, c_t = sum_s a_ts h_s.
- **GRU, one context vector** (`--model rnn`): the same GRUs, but the decoder sees the source only
  through the encoder's last state h_S.

**One recipe for all three**: `npformer train`'s (batch 64 in 2 replicas, Adam with the paper's
schedule: warm-up over 200 steps to 1e-3, then 1/sqrt(step); gradient norm clipped at 1;
greedy decoding), with **dropout 0 for every model** (the GRU models have no dropout, so the
Transformer's is turned off rather than giving it a regulariser the others lack). Each run
has the same budget of {steps} steps, stopping early at 99.5% held-out exact match; the
"plateaued" column counts the runs whose held-out exact match gained less than 0.01 over their
last four evaluations (or that reached the target), so a reader can see whether the budget
was long enough. The "training s" column is each run's wall time, evaluations included; it depends on what
else the machine was running, so it is not a speed comparison (the step-time table below is).
**Seeds** {", ".join(map(str, seeds))} for every cell; tables give the mean and, in
brackets, the lowest and highest seed. Lengths are drawn in two ways: **uniform** over 1..{max_len}, where
position p appears only in sources longer than p (the last one in 1 source of {max_len}), and
**long**, half of the sources at length {max_len} and the rest uniform, so every position is seen
in at least half of the sources. After training, {args.eval_size} fresh sources of each exact length
are decoded greedily (so exact match moves in steps of {1 / args.eval_size:g}, one source, and is shown
to 3 decimals). Derivations: [GRU](../derivations/gru.md),
[RNN with attention](../derivations/rnn_attention.md).

## Exact match by source length

{markdown_table(["model", "lengths drawn", "parameters", "steps trained", "plateaued", "training s"] + Ls, acc_rows)}

![exact match by length, per seed, and step time](rnn_vs_transformer.png)

{" ".join(numbers)}
{("Runs that had not plateaued when the budget ran out: " + ", ".join(unplateaued) + ".") if unplateaued else "Every run had plateaued or reached the target within the budget."}

## Wall time per training step against length

Milliseconds for one forward + backward pass on a batch of 64 sources of exactly length L
(targets L + 1 tokens), the fastest of 5, with {how_many(threads, 'BLAS thread')}, on a CPU (no GPU was
available for this measurement). The last column counts the dependent steps of one forward
pass at L={last}: the GRUs' S + T cell steps, each of which must wait for the one before, against
the Transformer's 2 + 2 layers, each applied to all positions at once.

{markdown_table(["model"] + Ls + [f"L={last} / L={first}", f"sequential steps at L={last}"], time_rows)}

## Argmax swapped in at test time

This is not hard attention as a way to train: the models were trained with softmax
attention, and only at decoding is each softmax over the keys replaced by a one-hot vector on
the highest-scoring key (`npformer.layers.scores.hard_attention`). It measures how much a
model trained soft depends on the mixture its weights form. Lengths drawn uniformly.

{markdown_table(["model", "attention weights at decoding"] + Ls, hard_rows)}

Training with hard attention needs a gradient estimator, since the argmax has zero derivative
wherever it is defined: REINFORCE-style sampling of the attended position (Xu et al. 2015,
"Show, Attend and Tell") or a relaxation such as Gumbel-softmax.

## What this shows

With one recipe, one step budget and {len(seeds)} seeds per cell:

{lessons}

## What it does not show

One small synthetic task and one width: it says nothing about which model is better on
real data or at other sizes. The step times are one CPU's with {how_many(threads, 'BLAS thread')}; on a GPU,
where the Transformer's layers work on all positions at once while the GRUs' steps still run
one after another, the ratios would differ, and no GPU was available to measure them.
"""
    def key(k):
        return "/".join(map(str, k))
    raw = {"settings": common, "seeds": seeds, "lengths": lengths,
           "accuracy": {key(k): v for k, v in accuracy.items()}, "hard": {key(k): v for k, v in hard.items()},
           "peaks": {key(k): v for k, v in peaks.items()}, "timing": timing, "params": params,
           "blas_threads": threads,
           "trained": {key(k): {kk: vv for kk, vv in v.items() if kk != "settings"} for k, v in trained.items()}}
    print("wrote", write_outputs(args.out, "rnn_vs_transformer", page, raw))


if __name__ == "__main__":
    main()
