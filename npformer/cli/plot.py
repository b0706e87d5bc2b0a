"""`npformer plot`: attention maps, positional encodings, masks, the schedule, a run's curves."""

import os

from npformer.cli import add_backend_flag
from npformer.train.optim import SCHEDULES


def add_parser(sub):
    p = sub.add_parser("plot", help="draw attention maps, positional encodings, masks, schedules, curves",
                       description="Write PNG pictures (needs matplotlib: pip install npformer[plot]).")
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    a = kinds.add_parser("attention", help="heatmaps of every layer's and head's attention for one input",
                         description="Decode SOURCE greedily with the model in CKPT, then draw encoder "
                                     "self-attention, decoder self-attention and cross-attention for every "
                                     "layer and head.")
    a.add_argument("checkpoint", metavar="CKPT")
    a.add_argument("source", metavar="SOURCE", help='token ids, e.g. "3 4 5 6"')
    a.add_argument("--out", default="plots", help="output folder (default: plots)")
    add_backend_flag(a)
    a.set_defaults(func=run_attention)

    pe = kinds.add_parser("positional", help="the sinusoidal positional-encoding matrix")
    pe.add_argument("--max-len", type=int, default=64)
    pe.add_argument("--d-model", type=int, default=128)
    pe.add_argument("--out", default="plots/positional.png")
    pe.set_defaults(func=run_positional)

    m = kinds.add_parser("masks", help="padding, causal and combined masks of a padded batch")
    m.add_argument("--out", default="plots/masks.png")
    m.set_defaults(func=run_masks)

    lr = kinds.add_parser("lr", help="the learning-rate schedule")
    lr.add_argument("--schedule", choices=SCHEDULES, default=SCHEDULES[0],
                    help="paper: warm-up to the peak --lr, then 1/sqrt(step) (LR-1, LR-3); constant: warm-up to --lr")
    lr.add_argument("--lr", type=float, default=1e-3)
    lr.add_argument("--warmup", type=int, default=200)
    lr.add_argument("--d-model", type=int, default=128)
    lr.add_argument("--steps", type=int, default=4000)
    lr.add_argument("--out", default="plots/lr.png")
    lr.set_defaults(func=run_lr)

    c = kinds.add_parser("metrics", help="loss and exact-match curves of a training run")
    c.add_argument("metrics", metavar="METRICS", help="a run's metrics.jsonl, or the run folder")
    c.add_argument("--out", default=None, help="default: curves.png beside the metrics file")
    c.set_defaults(func=run_metrics)


def _done(*paths):
    for path in paths:
        print(f"wrote {path}")


def _tokens(text):
    from npformer.errors import InputError
    try:
        return [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"SOURCE must be whitespace-separated integer token ids, got {text!r}.") from None


def run_attention(args):
    from npformer.model import load
    from npformer.plots import plot_attention
    model = load(args.checkpoint, backend=args.backend)
    _done(*plot_attention(model, _tokens(args.source), args.out))


def run_positional(args):
    from npformer.plots import plot_positional
    _done(plot_positional(args.out, args.max_len, args.d_model))


def run_masks(args):
    from npformer.plots import plot_masks
    _done(plot_masks(args.out))


def run_lr(args):
    from npformer.plots import plot_schedule
    from npformer.train.optim import learning_rate
    steps = list(range(1, args.steps + 1))
    rates = [learning_rate(s, args.schedule, args.lr, args.warmup, args.d_model) for s in steps]
    _done(plot_schedule(args.out, steps, rates, f"{args.schedule} schedule, warm-up {args.warmup}"))


def run_metrics(args):
    from npformer.plots import plot_metrics
    path = args.metrics
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    _done(plot_metrics(args.out or os.path.join(os.path.dirname(os.path.abspath(path)), "curves.png"), path))
