"""`npformer exercise`: write a backward pass yourself and have it checked.  docs: exercises.md"""

import math
import pathlib

from npformer.cli import _Parser

DEFAULT_DIR = "exercises"


def add_parser(sub):
    p = sub.add_parser("exercise", help="write each backward pass yourself; npformer checks it",
                       description="Exercises with a grader: `start` writes a layer with its forward given and "
                                   "its backward to write, `check` holds your backward against finite differences, "
                                   "the layer's edge cases and the purity rules, and says which equation went "
                                   "wrong.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    verbs.required = True
    ls = verbs.add_parser("list", help="the exercises, easiest first, and which of DIR's pass")
    ls.add_argument("--dir", default=DEFAULT_DIR, help=f"where your exercise files are (default: {DEFAULT_DIR})")
    ls.set_defaults(func=run_list)
    start = verbs.add_parser("start", help="write DIR/NAME.py: the forward given, the backward to write")
    start.add_argument("name", metavar="NAME", help="an exercise of `npformer exercise list`")
    start.add_argument("--dir", default=DEFAULT_DIR, help=f"where to write it (default: {DEFAULT_DIR})")
    start.set_defaults(func=run_start)
    check = verbs.add_parser("check", help="check the backward of FILE",
                             description="Check FILE's backward: shapes and dtypes, finite differences, the "
                                         "layer's edge cases, purity; one line per tensor.")
    check.add_argument("file", metavar="FILE")
    check.add_argument("--train", action="store_true",
                       help="once every check passes, train reverse with your layer beside the package's")
    check.add_argument("--steps", type=int, default=300, help="--train: steps (default 300)")
    check.add_argument("--seed", type=int, default=0, help="--train: the seed of both runs (default 0)")
    check.set_defaults(func=run_check)


def run_list(args):
    from npformer.exercises import EXERCISES, ExerciseError, check_file
    folder = pathlib.Path(args.dir)
    print(f"the exercises, easiest first (your files: {folder}/NAME.py)\n")
    print(f"    {'name':14} {'what':47} {'labels':30} {'page':34} status")
    for i, ex in enumerate(EXERCISES.values(), 1):
        path = folder / f"{ex.name}.py"
        status = "-"
        if path.is_file():
            try:
                status = "passes" if check_file(path, write=lambda line: None) else "started, not passing yet"
            except ExerciseError:
                status = "started, does not run yet"
        print(f"{i:>2}. {ex.name:14} {ex.title:47} {ex.labels:30} {'docs/' + ex.page:34} {status}")
    print("\nstart one with `npformer exercise start NAME`, check it with `npformer exercise check FILE`.")


def run_start(args):
    from npformer.exercises import EXERCISES, ExerciseError
    if args.name not in EXERCISES:
        raise ExerciseError(f"there is no exercise {args.name!r}; the exercises are {', '.join(EXERCISES)}.")
    ex = EXERCISES[args.name]
    path = pathlib.Path(args.dir) / f"{ex.name}.py"
    if path.exists():
        raise ExerciseError(f"{path} already exists and may hold your work, so it is left as it is; check it with "
                            f"`npformer exercise check {path}`, or move it away to start over.")
    if path.parent.exists() and not path.parent.is_dir():
        raise ExerciseError(f"{path.parent} is a file, not a folder to write the exercise into; pick another --dir.")
    path.parent.mkdir(parents=True, exist_ok=True)
    template = pathlib.Path(__file__).resolve().parents[1] / "exercises" / "templates" / f"{ex.name}.py"
    path.write_text(template.read_text())
    methods = " and ".join(f"{ex.cls}.{m}" for m in ex.methods)
    print(f"wrote {path}: write {methods} ({ex.labels}; read docs/{ex.page}),\n"
          f"then run `npformer exercise check {path}`.")


def run_check(args):
    from npformer.exercises.checker import load, main_check
    from npformer.exercises.train import require_swap, train_side_by_side
    if args.train:
        require_swap(load(args.file)[0])                         # before the checks run
    if not main_check(args.file):
        if args.train:
            print("--train waits until every check passes.")
        return 1
    if args.train:
        ex, cls = load(args.file)
        print()
        curves = train_side_by_side(ex, cls, steps=args.steps, seed=args.seed)
        return 0 if all(map(math.isfinite, curves["yours"])) else 1
    return 0
