"""`npformer plot`: attention maps, positional encodings, masks, the schedule, a run's curves."""

import os

from npformer.cli import add_backend_flag
from npformer.cli.decode import parse_tokens
from npformer.errors import ConfigError, InputError, check_int, check_real
from npformer.train.optim import SCHEDULES


OUT_HELP = "folder to write into (default: plots)"


def add_parser(sub):
    p = sub.add_parser("plot", help="draw attention maps, positional encodings, masks, schedules, curves",
                       description='Write PNG pictures into the folder --out (needs matplotlib: '
                                   'pip install -e ".[plot]").')
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True

    a = kinds.add_parser("attention", help="heatmaps of every layer's and head's attention for one input",
                         description="Decode SOURCE greedily with the model in CKPT, then draw encoder "
                                     "self-attention, decoder self-attention and cross-attention for every "
                                     "layer and head: DIR/attention_{encoder,decoder,cross}.png.")
    a.add_argument("checkpoint", metavar="CKPT")
    a.add_argument("source", metavar="SOURCE", help='token ids, e.g. "3 4 5 6"')
    a.add_argument("--out", metavar="DIR", default="plots", help=OUT_HELP)
    add_backend_flag(a)
    a.set_defaults(func=run_attention)

    pe = kinds.add_parser("positional", help="the sinusoidal positional-encoding matrix: DIR/positional.png")
    pe.add_argument("--max-len", type=int, default=64, help=f"positions, 1..{MAX_PICTURE:,} (default 64)")
    pe.add_argument("--d-model", type=int, default=128, help=f"dimensions, 1..{MAX_PICTURE:,} (default 128)")
    pe.add_argument("--out", metavar="DIR", default="plots", help=OUT_HELP)
    pe.set_defaults(func=run_positional)

    m = kinds.add_parser("masks", help="padding, causal and combined masks of a padded batch: DIR/masks.png")
    m.add_argument("--out", metavar="DIR", default="plots", help=OUT_HELP)
    m.set_defaults(func=run_masks)

    lr = kinds.add_parser("lr", help="the learning-rate schedule: DIR/lr.png")
    lr.add_argument("--schedule", choices=SCHEDULES, default=SCHEDULES[0],
                    help="paper: warm-up to the peak --lr, then 1/sqrt(step) (LR-1, LR-3); constant: warm-up to --lr")
    lr.add_argument("--lr", type=float, default=1e-3)
    lr.add_argument("--warmup", type=int, default=200)
    lr.add_argument("--d-model", type=int, default=128)
    lr.add_argument("--steps", type=int, default=4000, help=f"steps drawn, 1..{MAX_STEPS:,} (default 4000)")
    lr.add_argument("--out", metavar="DIR", default="plots", help=OUT_HELP)
    lr.set_defaults(func=run_lr)

    c = kinds.add_parser("metrics", help="loss and exact-match curves of a training run: DIR/curves.png")
    c.add_argument("metrics", metavar="METRICS", help="a run's metrics.jsonl, or the run folder")
    c.add_argument("--out", metavar="DIR", default=None, help="folder to write into (default: the run's folder)")
    c.set_defaults(func=run_metrics)


MAX_PICTURE = 4096             # rows or columns of a heatmap: more than a screen shows
MAX_STEPS = 1_000_000


def _done(*paths):
    for path in paths:
        print(f"wrote {path}")


def _file(out, name):
    """DIR/name, with DIR checked: every plot kind writes its pictures into the folder --out."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"--out {out} is a file; it names the folder the pictures go into.")
    return os.path.join(out, name)


def run_attention(args):
    from npformer.model import load
    from npformer.plots import plot_attention
    source = parse_tokens(args.source)
    _file(args.out, "")
    model = load(args.checkpoint, backend=args.backend)
    _done(*plot_attention(model, source, args.out))


def run_positional(args):
    from npformer.plots import plot_positional
    check_int("--max-len", args.max_len, 1, MAX_PICTURE)
    check_int("--d-model", args.d_model, 1, MAX_PICTURE)
    _done(plot_positional(_file(args.out, "positional.png"), args.max_len, args.d_model))


def run_masks(args):
    from npformer.plots import plot_masks
    _done(plot_masks(_file(args.out, "masks.png")))


def run_lr(args):
    from npformer.plots import plot_schedule
    from npformer.train.optim import learning_rate
    check_real("--lr", args.lr, positive=True)
    check_int("--warmup", args.warmup, 1 if args.schedule == "paper" else 0, MAX_STEPS)
    check_int("--d-model", args.d_model, 1, MAX_PICTURE)
    check_int("--steps", args.steps, 1, MAX_STEPS)
    path = _file(args.out, "lr.png")
    steps = list(range(1, args.steps + 1))
    rates = [learning_rate(s, args.schedule, args.lr, args.warmup, args.d_model) for s in steps]
    _done(plot_schedule(path, steps, rates, f"{args.schedule} schedule, warm-up {args.warmup}"))


def run_metrics(args):
    from npformer.plots import plot_metrics
    path = args.metrics
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.jsonl")
    if os.path.isfile(path):
        with open(path, "rb") as f:
            if f.read(4) == b"PK\x03\x04":                       # a zip: an .npz checkpoint
                raise InputError(f"{path} is a checkpoint, not a metrics file: give the run's metrics.jsonl "
                                 "or its folder.")
    out = _file(args.out or os.path.dirname(os.path.abspath(path)), "curves.png")
    try:
        _done(plot_metrics(out, path))
    except UnicodeDecodeError:
        raise InputError(f"{path} is not a text file of JSON lines; give the run's metrics.jsonl "
                         "or its folder.") from None
