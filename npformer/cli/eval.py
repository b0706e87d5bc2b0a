"""`npformer eval CKPT`: held-out exact match and token accuracy of a trained checkpoint."""

from npformer.cli import add_backend_flag
from npformer.errors import ConfigError, check_int

MAX_N = 100_000                                                  # held-out sequences: seconds, not hours


def add_parser(sub):
    p = sub.add_parser("eval", help="score a checkpoint on its task's held-out set (greedy decoding)",
                       description="Greedy-decode the first N sequences of the task's fixed held-out set "
                                   "and print exact-sequence match and token accuracy.")
    p.add_argument("checkpoint", metavar="CKPT", help="a model.npz written by `npformer train`")
    p.add_argument("--n", type=int, default=1000, help=f"held-out sequences to decode, at most {MAX_N:,} (default 1000)")
    p.add_argument("--task", choices=["copy", "reverse", "sort"], default=None,
                   help="task to score (default: the one the checkpoint was trained on)")
    p.add_argument("--samples", type=int, default=3, metavar="K", help="sample decodes to print (default 3)")
    add_backend_flag(p)
    p.set_defaults(func=run)


def run(args):
    from npformer.model.checkpoint import inspect, load
    from npformer.train.loop import TrainConfig, evaluate, samples
    from npformer.train.tasks import FIRST_SYMBOL, Task, heldout

    check_int("--n", args.n, 1, MAX_N)
    check_int("--samples", args.samples, 0, args.n)
    header, _ = inspect(args.checkpoint)
    model = load(args.checkpoint, backend=args.backend)
    saved = header["meta"].get("train")
    if saved is None and args.task is None:
        raise ConfigError(f"{args.checkpoint} does not say which task it was trained on: pass --task.")
    if saved is not None:
        cfg = TrainConfig.from_dict(saved)
        task = Task(args.task or cfg.task, cfg.n_symbols, cfg.min_len, cfg.max_len)
        eval_seed = cfg.eval_seed
    else:
        task = Task(args.task, model.cfg.src_vocab - FIRST_SYMBOL)
        eval_seed = TrainConfig.eval_seed
    if model.cfg.src_vocab != task.vocab:
        raise ConfigError(f"the checkpoint's vocabulary is {model.cfg.src_vocab} tokens, the task's {task.vocab}.")

    sources = heldout(task, args.n, eval_seed)
    ev = evaluate(model, task, sources)
    print(f"{task.name}, {args.n} held-out sequences of length {task.min_len}..{task.max_len}: "
          f"exact match {ev['exact_match']:.4f}, token accuracy {ev['token_accuracy']:.4f}")
    for line in samples(task, sources, ev["produced"], args.samples):
        print(f"  {line}")
    return 0
