"""Sphinx configuration for the npformer notes.

Build (warnings are errors, so a broken link, or a code include naming a function that no
longer exists, fails):  python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

project = "npformer"
author = "npformer contributors"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3
html_theme = "alabaster"
highlight_language = "python"
