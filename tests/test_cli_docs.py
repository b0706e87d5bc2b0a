"""`npformer docs`: builds the book into a build folder, prints its index page, opens it with
--open, refuses folders that may hold a user's files, and says which extra is missing.

The real book takes minutes to build (its notebook pages run); here the command builds a tiny
book with the real conf.py instead, so the Sphinx call itself is exercised in a few seconds."""

import os
import shutil

import pytest

from npformer.cli import docs as docs_cli
from npformer.cli import main

pytestmark = pytest.mark.skipif(
    os.environ.get("NPFORMER_BACKEND", "numpy") not in ("", "numpy"),
    reason="the book does not depend on the array backend; it is built in the NumPy run")


@pytest.fixture
def tiny_book(tmp_path, monkeypatch):
    """A one-page book with the real configuration, standing in for docs/."""
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_nb")
    pytest.importorskip("sphinx_book_theme")
    src = tmp_path / "src" / "docs"
    shutil.copytree(docs_cli.DOCS / "_static", src / "_static",
                    ignore=shutil.ignore_patterns("mathjax"))
    (src / "_static" / "mathjax").mkdir()
    shutil.copy(docs_cli.DOCS / "conf.py", src / "conf.py")
    shutil.copytree(docs_cli.DOCS / "_ext", src / "_ext")
    (src / "index.md").write_text("# A tiny book\n\nThe mean: $\\mu = \\frac1D \\sum_i x_i$.\n")
    monkeypatch.setattr(docs_cli, "DOCS", src)
    return src


def _error(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def test_docs_builds_and_prints_the_index_page(tiny_book, tmp_path, capsys, monkeypatch):
    opened = []
    monkeypatch.setattr(docs_cli.webbrowser, "open", lambda url: opened.append(url) or True)
    out = tmp_path / "book"
    assert main(["docs", "--out", str(out), "--open"]) == 0
    index = out / "html" / "index.html"
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(index)
    assert "A tiny book" in index.read_text()
    assert opened == [index.as_uri()]
    assert (out / docs_cli.MARKER).exists()
    assert main(["docs", "--out", str(out)]) == 0                 # its own folder again: allowed


def test_docs_default_folder_is_build_inside_the_sources(tiny_book, capsys):
    assert main(["docs"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tiny_book / "_build" / "html" / "index.html")


def test_docs_never_writes_into_a_users_folder(tiny_book, tmp_path, capsys):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("mine")
    _error(capsys, ["docs", "--out", str(mine)], "not empty", "--out")
    assert [p.name for p in mine.iterdir()] == ["todo.txt"]
    a_file = tmp_path / "page.html"
    a_file.write_text("mine")
    _error(capsys, ["docs", "--out", str(a_file)], "is a file")
    assert a_file.read_text() == "mine"
    _error(capsys, ["docs", "--out", str(tiny_book / "html")], "inside the book's sources")


def test_docs_without_the_extra_names_it(capsys, monkeypatch):
    monkeypatch.setattr(docs_cli.importlib.util, "find_spec", lambda name: None)
    _error(capsys, ["docs"], 'pip install -e ".[docs]"')


def test_a_failed_build_is_one_line(tiny_book, tmp_path, capsys):
    (tiny_book / "conf.py").write_text("raise SystemExit(3)\n")
    _error(capsys, ["docs", "--out", str(tmp_path / "b")], "did not build")
