"""`npformer docs`: build the book (the docs/ folder of this checkout) into HTML with no network,
and print the path of its index page; `--open` opens it in the web browser.

The build folder holds the pages (html/), Sphinx's cache and the executed notebooks. The command
writes only into a folder that it made before, an empty or new one, or an earlier Sphinx build;
anything else is refused, so it cannot overwrite a user's files.
"""

import importlib.util
import pathlib
import subprocess
import sys
import webbrowser

from npformer.errors import NpformerError

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
MARKER = ".npformer-book"                                  # left in every build folder made here
NEEDS = ("sphinx", "myst_nb", "sphinx_book_theme")


def add_parser(sub):
    p = sub.add_parser("docs", help="build the book offline and print the path of its index page",
                       description="Build the book (every derivation page, with its cells run) into "
                                   "HTML that reads with no network, and print the path of its index "
                                   "page. Needs the docs extra: pip install -e \".[docs]\".")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="build folder (default: docs/_build of this checkout); the pages go to DIR/html")
    p.add_argument("--open", action="store_true", help="open the index page in the web browser")
    p.set_defaults(func=run)


def run(args):
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise NpformerError('building the book needs the docs extra: pip install -e ".[docs]" '
                            f"(missing: {', '.join(missing)}).")
    if not (DOCS / "conf.py").is_file():
        raise NpformerError(f"the book's sources are not here ({DOCS}): run `npformer docs` from a "
                            "checkout of the repository installed with pip install -e .")
    out = pathlib.Path(args.out).expanduser().resolve() if args.out else DOCS / "_build"
    check_build_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("A build folder of `npformer docs`: everything here is made again by it.\n")

    html = out / "html"
    print(f"building the book from {DOCS} into {html} (the notebook pages run their cells; "
          "the first build takes a few minutes, later ones reuse the cache)", flush=True)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "--keep-going",
           "-d", str(out / ".doctrees"), str(DOCS), str(html)]
    done = subprocess.run(cmd, cwd=DOCS.parent)
    if done.returncode != 0:
        raise NpformerError(f"the book did not build (Sphinx exited with {done.returncode}; its messages are above).")
    index = html / "index.html"
    if not index.is_file():
        raise NpformerError(f"the build finished but wrote no {index}.")
    print(index)
    if args.open and not webbrowser.open(index.as_uri()):
        print("no web browser was found: open the path above in one.")
    return 0


def check_build_folder(out):
    """Refuse a folder that may hold a user's files: only a new or empty folder, one this command
    made (it holds MARKER) or an earlier Sphinx build (html/.buildinfo) may be written into."""
    if out.exists() and not out.is_dir():
        raise NpformerError(f"--out must name a folder, and {out} is a file.")
    inside = out.resolve().is_relative_to(DOCS.resolve())
    if inside and not out.resolve().is_relative_to((DOCS / "_build").resolve()):
        raise NpformerError(f"{out} is inside the book's sources ({DOCS}): choose a folder outside "
                            "docs/, or docs/_build.")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists() \
            and not (out / "html" / ".buildinfo").exists():
        raise NpformerError(f"{out} is not empty and is not a book build folder: choose a new or "
                            "empty folder with --out.")
