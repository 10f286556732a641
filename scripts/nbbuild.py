"""Build a notebook from a Python source of cells, then execute it in place so it is committed with outputs.

    .venv/bin/python scripts/nbbuild.py scripts/notebook_sources/01_constants.py [--no-execute]

A source module defines ``NAME`` (e.g. ``"01_constants"``), ``CELLS`` (a list made with :func:`markdown`
and :func:`code`) and ``CI_PARAMETERS`` (a dict, stored in ``metadata["ssd_tutorial"]["ci_parameters"]``).
Cell ids are derived from the position, and execution runs on a fresh ``python3`` kernel (this
interpreter's, started over IPC by tests/notebook_harness.py) with the working directory notebooks/, without timing
metadata, so rebuilding an unchanged source gives the same file apart from images.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "python3"


def markdown(text: str) -> nbformat.NotebookNode:
    """A markdown cell; ``text`` is dedented and stripped."""
    return new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str, *tags: str) -> nbformat.NotebookNode:
    """A code cell with optional tags (``"parameters"``, ``"nbval-ignore-output"``)."""
    cell = new_code_cell(textwrap.dedent(text).strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# The public repository the notebooks are published from (used by the Colab cell and the Binder links).
REPO_URL = "https://github.com/OWNER/ssd_tutorial"

COLAB_CELL = """
# Google Colab only: fetch the project and install its package. Does nothing anywhere else (JupyterLab, Binder, CI).
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    REPO_URL, CHECKOUT = "{repo_url}", "/content/ssd_tutorial"
    if not os.path.isdir(CHECKOUT):
        subprocess.run(["git", "clone", "--depth", "1", REPO_URL, CHECKOUT], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", CHECKOUT], check=True)
    sys.path.insert(0, CHECKOUT)  # importable now, without restarting the runtime
    from google.colab import output

    output.enable_custom_widget_manager()  # lets ipywidgets 8 sliders draw in Colab
"""


def colab_cell(repo_url: str = REPO_URL) -> nbformat.NotebookNode:
    """The guarded first code cell that installs the package on Google Colab (a no-op elsewhere)."""
    return code(COLAB_CELL.replace("{repo_url}", repo_url))


def build(name: str, cells: list[nbformat.NotebookNode], ci_parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """The unexecuted notebook: kernel python3, CI parameters in the metadata, stable cell ids."""
    nb = new_notebook(cells=cells)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"c{index:03d}"
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3 (ssd_tutorial)",
                                 "language": "python"}  # fmt: skip
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["ssd_tutorial"] = {"ci_parameters": dict(ci_parameters)}
    return nb


def _notebook_harness() -> Any:
    """tests/notebook_harness.py, which holds the kernel environment and the IPC kernel manager the tests use."""
    if "notebook_harness" not in sys.modules:  # under pytest, tests/ is on sys.path and it is imported already
        spec = importlib.util.spec_from_file_location("notebook_harness", REPO_ROOT / "tests" / "notebook_harness.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["notebook_harness"] = module
    return sys.modules["notebook_harness"]


def execute(nb: nbformat.NotebookNode, timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell top to bottom on a fresh kernel (over IPC, as in the tests), in notebooks/; raises on the
    first error."""
    from nbclient import NotebookClient

    harness = _notebook_harness()
    with harness.replaced_environ(harness.kernel_environ()):
        client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, record_timing=False,
                                kernel_manager_class=harness.AsyncIPCKernelManager,
                                resources={"metadata": {"path": str(NOTEBOOK_DIR)}})  # fmt: skip
        client.execute()
    return nb


def load_source(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"_nb_source_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path, help="scripts/notebook_sources/NN_name.py files")
    parser.add_argument("--no-execute", action="store_true", help="write the notebook without running it")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    for source in args.sources:
        module = load_source(source)
        nb = build(module.NAME, module.CELLS, getattr(module, "CI_PARAMETERS", {}))
        if not args.no_execute:
            execute(nb, timeout=args.timeout)
        out = NOTEBOOK_DIR / f"{module.NAME}.ipynb"
        nbformat.validate(nb)
        nbformat.write(nb, str(out))
        print(f"wrote {out.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
