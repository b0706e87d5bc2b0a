"""Sphinx configuration for the npformer book.

Build (warnings are errors, so a broken link, a failing code cell, or a code include naming a
function that no longer exists fails):  python -m sphinx -W --keep-going -b html docs docs/_build/html

Pages whose front matter says `file_format: mystnb` are notebooks: MyST-NB runs their code
cells when the book is built and puts the output on the page. Everything the pages load is
in the built folder (MathJax included), so the book reads with no network.
"""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The notebooks run in a separate kernel process: make it import this checkout's npformer.
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)

project = "npformer"
author = "npformer contributors"
# docs/_ext: the book's own extensions (notebook_download: each notebook page as an .ipynb).
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
extensions = ["myst_nb", "notebook_download"]
root_doc = "index"
exclude_patterns = ["_build", "_ext", "jupyter_execute", ".jupyter_cache", "**.ipynb_checkpoints",
                    "experiments/g2p_results.md"]   # a section of g2p.md, included there
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
highlight_language = "python"

# Executing the notebook pages: a failing cell fails the build.
nb_execution_mode = "cache"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 600
nb_merge_streams = True

# A theme for long technical reading, with every asset served from the built folder.
html_theme = "sphinx_book_theme"
html_title = "npformer"
html_static_path = ["_static"]
html_css_files = ["npformer.css"]
html_theme_options = {
    "repository_url": "",
    "use_download_button": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    # The derivation pages (and the other pages of code cells) give the width of the right-hand
    # contents column to their code, so a backward line and its label fit at a 1366-pixel window.
    "secondary_sidebar_items": {"*": ["page-toc"], "experiments/*": ["page-toc"], "derivations/*": [],
                                "concepts": [], "gradcheck": []},
}
# MathJax 3 (Apache-2.0), one self-contained file with its SVG fonts: formulas render offline.
mathjax_path = "mathjax/tex-svg-full.js"
mathjax3_config = {
    "options": {"enableMenu": False},
    "svg": {"fontCache": "global"},
}
