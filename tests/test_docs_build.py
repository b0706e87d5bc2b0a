"""The notes in docs/ build into HTML with warnings as errors: a broken link, a page outside
the table of contents, or a code include naming a function that no longer exists fails here.

Skipped where Sphinx and MyST-Parser are not installed (pip install -e ".[docs]").

"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")
pytest.importorskip("myst_nb")

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

pytestmark = pytest.mark.skipif(
    os.environ.get("NPFORMER_BACKEND", "numpy") not in ("", "numpy"),
    reason="the docs do not depend on the array backend; they are built in the NumPy run")


def build(src, out):
    """Run the documented build command; returns (exit code, its output)."""
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
           "-d", str(out / ".doctrees"), str(src), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    return done.returncode, done.stdout + done.stderr


def test_docs_build_without_warnings(tmp_path):
    code, output = build(DOCS, tmp_path / "html")
    assert code == 0, f"the docs build failed or warned:\n{output}"
    for page in ("index", "notation", "architecture", "derivations/layernorm"):
        assert (tmp_path / "html" / f"{page}.html").exists(), f"{page}.html was not written"
    layernorm = (tmp_path / "html" / "derivations" / "layernorm.html").read_text()
    assert ">dxhat<" in layernorm, "the LayerNorm page does not show its backward code"


def test_the_build_fails_on_a_missing_function(tmp_path):
    """A page that includes a function that does not exist must break the build."""
    src = tmp_path / "docs"
    src.mkdir()
    shutil.copy(DOCS / "conf.py", src / "conf.py")
    shutil.copytree(DOCS / "_ext", src / "_ext")                  # the book's own extensions
    (src / "layer.py").write_text("class Layer:\n    def backward(self, dout):\n        return dout\n")
    (src / "index.md").write_text("# Broken\n\n```{literalinclude} layer.py\n:pyobject: Layer.no_such_method\n```\n")
    code, output = build(src, tmp_path / "html")
    assert code != 0 and "no_such_method" in output, output
