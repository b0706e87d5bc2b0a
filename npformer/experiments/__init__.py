"""The experiments of docs/experiments/: one module per experiment, one command each.

    python -m npformer.experiments.scores               attention score functions on reverse
    python -m npformer.experiments.rnn_vs_transformer   RNN (with and without attention) vs Transformer,
                                                        by length; soft vs hard attention
    python -m npformer.experiments.digits               self-attention on 8x8 digit images
    python -m npformer.experiments.complexity           the paper's Table 1, measured
    python -m npformer.experiments.g2p                  grapheme-to-phoneme on the CMU dictionary: the
                                                        results section of docs/g2p.md

Each writes a Markdown page (tables of what it measured, the command and the settings) and
its plots into docs/experiments/, and the raw numbers as JSON beside them. `--quick` runs a
few steps only, to check that the command works; its numbers mean nothing.

A comparison trains every cell with the same recipe from several seeds and reports the mean
and the range over seeds (`spread`): one seed cannot tell a difference from noise.
"""

import json
import os
import platform
import time

from npformer.backend import blas_threads

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "experiments")


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display)."""
    from npformer.plots import _pyplot
    return _pyplot()


def command(name, argv):
    """The command line that ran experiment `name` with arguments argv, for the page."""
    return " ".join([f"python -m npformer.experiments.{name}"] + list(argv))


def markdown_table(header, rows):
    """A GitHub-style Markdown table from a header list and rows of cells."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine():
    """One line saying where the numbers were measured."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, Python {platform.python_version()}"


def write_outputs(out_dir, name, page, raw):
    """Write name.md (the page) and name.json (raw numbers) into out_dir; returns the page path."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(raw, f, indent=1)
    path = os.path.join(out_dir, f"{name}.md")
    with open(path, "w") as f:
        f.write(page)
    return path


def one_thread():
    """Limit BLAS to one thread. These models are small: on a shared machine, threads fighting
    over a few cores made a step 10x slower than one thread does."""
    blas_threads(1)


class Clock:
    """Wall time of a block, in seconds: `with Clock() as c: ...; c.s`."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0


def words(names):
    """Names as a phrase: 'a', 'a and b', 'a, b and c'."""
    names = list(names)
    return " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]


def other_settings(run_dir):
    """The stop for a run folder that holds a run of other settings than the experiment's: it is
    never overwritten. `raise other_settings(run_dir)`."""
    return SystemExit(f"{run_dir} holds a run of other settings than this experiment's: move it away, or "
                      "choose another --runs.")


def saved_run(run_dir):
    """(TrainConfig, meta) of the training run whose checkpoint run_dir holds, meta being its
    header's (meta["step"] the steps it took). A checkpoint that cannot be read, or that no
    training run wrote, stops the command with one sentence; it is never overwritten."""
    from npformer.errors import NpformerError
    from npformer.model.checkpoint import read
    from npformer.train.loop import CHECKPOINT, TrainConfig
    try:
        meta = read(os.path.join(run_dir, CHECKPOINT))[0].get("meta", {})
        if not (isinstance(meta.get("train"), dict) and isinstance(meta.get("step"), int)):
            raise other_settings(run_dir)
        return TrainConfig.from_dict(meta["train"]), meta
    except NpformerError as e:
        raise SystemExit(f"{e} Move {run_dir} away, or choose another --runs.")


def train_to_end(trainer, run_dir):
    """Run a Trainer to its end, each line of its progress printed indented. A run that diverges
    keeps its last checkpoint and stops the command with one sentence."""
    from npformer.train.loop import TrainingDiverged
    try:
        trainer.run(progress=False, write=lambda line: print("   ", line, flush=True))
    except TrainingDiverged as e:
        raise SystemExit(f"{run_dir}: {e}")


def how_many(n, unit):
    """'one core' / '2 cores': a count with its unit."""
    return f"one {unit}" if n == 1 else f"{n} {unit}s"


def spread(values):
    """(mean, lowest, highest) of a list of numbers; None for an empty list."""
    if not values:
        return None
    return sum(values) / len(values), min(values), max(values)


def overlaps(a, b):
    """Do two (mean, lo, hi) ranges overlap?"""
    return a is not None and b is not None and a[1] <= b[2] and b[1] <= a[2]


def show_spread(values, digits=0):
    """'mean (min-max)' of the values, e.g. '1500 (1250-1750)'; '-' for none."""
    s = spread(values)
    if s is None:
        return "-"
    mean, lo, hi = s
    return f"{mean:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"
