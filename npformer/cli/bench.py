"""`npformer bench`: npformer's training step against PyTorch's, and the time to solve."""

import os
import shlex
import sys

from npformer.cli import add_backend_flag


def add_parser(sub):
    p = sub.add_parser("bench", help="time a training step against PyTorch; time to solve the reverse task",
                       description="Times npformer's training step (forward, loss, backward, Adam) and a "
                                   "PyTorch reference of the same model, interleaved, on five workloads, and "
                                   "prints the ratio npformer / PyTorch, the FLOP/s reached against the "
                                   "measured matrix-multiply rate, and peak memory per step; then trains both "
                                   "with the default `npformer train` recipe until they solve the reverse task. "
                                   "Needs PyTorch for the comparison: pip install torch==2.13.0.")
    add_backend_flag(p)
    p.add_argument("--workloads", metavar="NAMES",
                   help="comma-separated: reference, reference-nodrop, medium, large, deep (default: all)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="threads for NumPy's BLAS and for PyTorch (default: NumPy's current count)")
    p.add_argument("--seconds", type=float, default=10.0, metavar="S",
                   help="time each workload for at least S seconds (default 10)")
    p.add_argument("--min-steps", type=int, default=5, metavar="N", help="timed steps per framework, at least")
    p.add_argument("--no-torch", action="store_true", help="time npformer alone")
    p.add_argument("--no-solve", action="store_true", help="skip the time-to-solve comparison")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--no-count", action="store_true",
                   help="skip counting the array operations of a step (on the strict backend)")
    p.add_argument("--markdown", metavar="PATH",
                   help="also write the results as a Markdown page at PATH (the published pages are "
                        "docs/benchmarks.md, and docs/benchmarks-gpu.md for --backend cupy); without it "
                        "nothing is written")
    p.add_argument("--note", metavar="TEXT", help="a line about the conditions of the run, for the Markdown page")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes and one step each: checks the benchmark runs, measures nothing, writes nothing")
    p.set_defaults(func=run)


def run(args):
    from npformer.bench import WORKLOADS, run as bench
    from npformer.errors import ConfigError, check_int, check_real

    names = None
    if args.workloads:
        names = [n.strip() for n in args.workloads.split(",") if n.strip()]
        known = {w.name for w in WORKLOADS}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"unknown workload {unknown[0]!r}: choose from {', '.join(sorted(known))}.")
    if args.threads is not None:
        check_int("--threads", args.threads, 1, 1024)
    check_real("--seconds", args.seconds, 0.0, 3600.0)
    check_int("--min-steps", args.min_steps, 1, 10_000)
    if args.smoke and args.markdown:
        raise ConfigError("--smoke measures nothing, so it writes no page: drop --markdown, or --smoke.")
    if args.markdown is not None and (not args.markdown or os.path.isdir(args.markdown)):
        raise ConfigError(f"--markdown needs the path of a file to write, got {args.markdown!r}.")
    bench(names, backend=args.backend, threads=args.threads, with_torch=not args.no_torch,
          solve=not args.no_solve, memory=not args.no_memory, count=not args.no_count, seconds=args.seconds,
          min_steps=args.min_steps, markdown=args.markdown, smoke=args.smoke, note=args.note,
          command="npformer " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "npformer bench")
