"""The `npformer` command line: one module per subcommand, each with `add_parser(subparsers)`.

Every expected failure ends here, in main(), as one line on stderr: exit status 2 for bad
usage (a bad flag, a missing file, a token outside the vocabulary), 1 for a failure while
running (training diverged, a full disk, no permission). A closed pipe (`npformer ... | head`)
ends the command quietly, as Unix tools do. Only a bug in npformer itself shows a traceback.
"""

import argparse
import errno
import importlib
import os
import sys

from npformer.errors import NpformerError, os_reason

# Subcommands, in the order `npformer --help` lists them. Each names a module in this package.
COMMANDS = ["train", "eval", "decode", "pronounce", "gradcheck", "plot", "bench", "exercise", "docs"]


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


# OS errors that mean the path the user gave is wrong (bad usage, exit 2); any other is a
# failure while running (exit 1): a full disk, no permission, an input/output error.
USAGE_ERRNOS = {errno.ENOENT, errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.ENAMETOOLONG}
SIGPIPE_EXIT = 141                                               # 128 + SIGPIPE, what a shell reports for `| head`


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args) or 0
        sys.stdout.flush()                                       # a closed pipe shows up here, not at exit
        return code
    except BrokenPipeError:
        _silence_stdout()
        return SIGPIPE_EXIT
    except NpformerError as e:
        return _fail(args.command, str(e), e.exit_code)
    except OSError as e:
        return _fail(args.command, os_error_sentence(e), 2 if e.errno in USAGE_ERRNOS else 1)
    except KeyboardInterrupt:
        print(f"npformer {args.command}: interrupted.", file=sys.stderr)
        return 130


def _silence_stdout():
    """The reader of stdout went away: send what is still buffered to devnull, so the flush at
    exit does not fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, ValueError, OSError):                # not a real file (a test's capture)
        pass


def _fail(command, sentence, code):
    print(f"npformer {command}: error: {sentence}", file=sys.stderr)
    return code


def os_error_sentence(e):
    """An OSError as one sentence: 'no space left on device: runs/x/model.npz.'"""
    return f"{os_reason(e)}: {e.filename}." if e.filename else f"{os_reason(e)}."


def add_backend_flag(parser):
    """--backend, shared by every command that computes."""
    parser.add_argument("--backend", choices=["numpy", "cupy", "strict"], default=None,
                        help="array backend (default: $NPFORMER_BACKEND, else numpy)")
