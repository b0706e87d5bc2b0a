"""Each notebook page of the book offered as a notebook: the executed .ipynb (cells and their
outputs, as MyST-NB ran them for this build) is copied next to the page's source in the built
folder, and the page's download menu links to it.

sphinx-book-theme shows the ".ipynb" entry of its download menu only for notebooks that it
copies itself, which it does only when a launch service (Binder, Colab, ...) is configured;
the book has none, because it reads offline.
"""

import shutil
from pathlib import Path


def offer_notebook(app, pagename, templatename, context, doctree):
    if "kernelspec" not in app.env.metadata.get(pagename, {}):
        return                                             # not a notebook page
    executed = Path(app.env.mystnb_config.output_folder) / f"{pagename}.ipynb"
    if not executed.is_file():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"          # read by the theme's download menu


def setup(app):
    # Before the theme builds its header buttons (priority 501).
    app.connect("html-page-context", offer_notebook, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
