"""The `npformer` command line: one module per subcommand, each with `add_parser(subparsers)`.

Errors a user can cause (a bad flag, a missing file, a token outside the vocabulary) print
one line and exit with status 2; only a bug in npformer itself shows a traceback.
"""

import argparse
import importlib
import sys

from npformer.errors import NpformerError

# Subcommands, in the order `npformer --help` lists them. Each names a module in this package.
COMMANDS = ["train", "eval", "decode", "gradcheck", "plot", "bench", "exercise"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, and where --help is), exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser():
    parser = _Parser(
        prog="npformer",
        description="The Transformer on NumPy/CuPy with hand-written, gradient-checked backward passes.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"npformer.cli.{name}").add_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except NpformerError as e:
        print(f"npformer {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"npformer {args.command}: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"npformer {args.command}: interrupted.", file=sys.stderr)
        return 130


def add_backend_flag(parser):
    """--backend, shared by every command that computes."""
    parser.add_argument("--backend", choices=["numpy", "cupy", "strict"], default=None,
                        help="array backend (default: $NPFORMER_BACKEND, else numpy)")
