"""`npformer gradcheck`: the float64 finite-difference check of every layer, as a table."""

from npformer.cli import add_backend_flag
from npformer.errors import ConfigError


def add_parser(sub):
    p = sub.add_parser("gradcheck", help="check every layer's backward against finite differences",
                       description="Finite-difference gradient check, in float64, of every input and "
                                   "parameter of every layer (and of the whole model). Exits 1 if any "
                                   "tensor's relative error exceeds the tolerance.")
    add_backend_flag(p)
    p.add_argument("--only", metavar="TEXT", help="run only the checks whose name contains TEXT")
    p.set_defaults(func=run)


def run(args):
    from npformer.backend import backend_name, get_backend
    from npformer.gradcheck_cases import CASES

    get_backend(args.backend)                                    # fail now, in one line, if it cannot run

    cases = [c for c in CASES if args.only is None or args.only.lower() in c.name.lower()]
    if not cases:
        raise ConfigError(f"no check's name contains {args.only!r}; the names are {', '.join(c.name for c in CASES[:4])}, "
                          "... (run without --only to see all).")
    print(f"gradient check, float64, backend {backend_name(args.backend)}: "
          "max relative error per tensor (bar 1e-6)\n")
    print(f"{'layer':52} {'tensor':30} {'shape':14} {'error':>8}  result")
    n_failed = n = 0
    for case in cases:
        for r in case.run(args.backend):
            n += 1
            n_failed += not r.passed
            print(f"{r.layer:52} {r.tensor:30} {str(r.shape):14} {r.error:8.1e}  {'pass' if r.passed else 'FAIL'}")
            if not r.passed:
                print(f"    {r.describe()}")
    print(f"\n{n - n_failed} passed, {n_failed} failed")
    return 1 if n_failed else 0
