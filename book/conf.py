"""Sphinx configuration of the book (`make book`): the committed notebooks, rendered without re-executing them.

scripts/build_book.py assembles the source folder (this file, the pages of book/, notebooks/*.ipynb, the generated API
page) under build/book/src and runs Sphinx there with warnings as errors.
"""

import os
import tomllib
from pathlib import Path

REPO_ROOT = Path(os.environ.get("SSD_BOOK_REPO_ROOT", Path(__file__).resolve().parents[1]))
_project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
REPOSITORY_URL = _project["urls"]["Repository"]  # the one place the public address is set

project = "Build your own SSD"
author = "ssd_tutorial maintainers"
release = _project["version"]
copyright = "2026, " + author

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "sphinx.ext.viewcode"]
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "node_modules"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb", ".rst": "restructuredtext"}

# The committed outputs are the content: never execute.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# Saved widget state renders through ipywidgets' HTML manager, served from this site (no CDN, works offline).
nb_ipywidgets_js = {"widgets/embed.js": {"crossorigin": "anonymous"}}
# MathJax 3 served from this site too (npm package mathjax, copied by scripts/build_book.py).
mathjax_path = "mathjax/tex-mml-chtml.js"
html_js_files = [("mathjax-hub.js", {"priority": 100})]  # before MathJax and the widget manager

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_book_theme"
html_title = "Build your own SSD"
html_static_path = ["_static"]
html_theme_options = {
    "repository_url": REPOSITORY_URL,
    "repository_branch": "main",
    "path_to_docs": "",  # the site mirrors the repository: notebooks/NN_name.ipynb
    "use_repository_button": True,
    "launch_buttons": {"binderhub_url": "https://mybinder.org", "colab_url": "https://colab.research.google.com",
                       "notebook_interface": "jupyterlab"},
    "show_toc_level": 2,
}
