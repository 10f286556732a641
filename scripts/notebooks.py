"""Maintain the notebooks: each ``notebooks/NN_name.ipynb`` is a jupytext pair with ``notebooks/NN_name.py``.

    .venv/bin/python scripts/notebooks.py run 03_heads        # sync the pair, re-execute, refresh outputs
    .venv/bin/python scripts/notebooks.py check               # exit 1 if a pair has drifted (CI runs this)
    .venv/bin/python scripts/notebooks.py sync                # jupytext --sync every pair
    .venv/bin/python scripts/notebooks.py colab               # (re)write the guarded Colab cell of every notebook

The ``.py`` twin (percent format) holds the cells' text and tags; the ``.ipynb`` adds the outputs and the
notebook metadata (the CI parameters in ``metadata["ssd_tutorial"]["ci_parameters"]`` are kept in both).
Edit either side (JupyterLab keeps both in step through ``notebooks/jupytext.toml``), then ``run`` the notebook so
its committed outputs match its code. Execution uses a fresh ``python3`` kernel over IPC in notebooks/, without
timing metadata, as the tests do.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tomllib
from pathlib import Path
from typing import Any

import jupytext
import nbformat

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "python3"
COLAB_TAG = "colab"
FIX_COMMAND = ".venv/bin/jupytext --sync notebooks/{name}.ipynb   (or: make sync)"

COLAB_CELL = """\
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

    output.enable_custom_widget_manager()  # lets ipywidgets 8 sliders draw in Colab"""


def repository_url() -> str:
    """The project's public repository, defined once: ``[project.urls] Repository`` in pyproject.toml."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return project["urls"]["Repository"]


def colab_source(repo_url: str | None = None) -> str:
    """The guarded first code cell that installs the package on Google Colab (a no-op elsewhere)."""
    return COLAB_CELL.replace("{repo_url}", repo_url or repository_url())


def pairs() -> list[Path]:
    """Every notebooks/NN_name.ipynb (sorted); its twin is the same path with ``.py``."""
    return sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def drift(ipynb: Path) -> str | None:
    """Why the pair of ``ipynb`` is out of step (None when both hold the same cells)."""
    twin = ipynb.with_suffix(".py")
    if not twin.exists():
        return f"{twin.relative_to(REPO_ROOT)} is missing"
    notebook = jupytext.read(ipynb)
    script = jupytext.read(twin)
    left = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in notebook.cells]
    right = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in script.cells]
    if len(left) != len(right):
        return f"{len(left)} cells in {ipynb.name}, {len(right)} in {twin.name}"
    for index, (a, b) in enumerate(zip(left, right)):
        if a != b:
            return f"cell {index} differs ({'type' if a[0] != b[0] else 'text' if a[1] != b[1] else 'tags'})"
    return None


def check() -> list[str]:
    """One line per drifted pair, with the command that fixes it."""
    problems = []
    for ipynb in pairs():
        reason = drift(ipynb)
        if reason:
            problems.append(f"{ipynb.relative_to(REPO_ROOT)}: {reason}; fix: {FIX_COMMAND.format(name=ipynb.stem)}")
    return problems


def sync(ipynb: Path) -> None:
    """``jupytext --sync``: the newer side's text wins, the outputs stay in the .ipynb."""
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--sync", "--quiet", str(ipynb)])


def _notebook_harness() -> Any:
    """tests/notebook_harness.py: the kernel environment and the IPC kernel manager the tests use."""
    if "notebook_harness" not in sys.modules:
        spec = importlib.util.spec_from_file_location("notebook_harness", REPO_ROOT / "tests" / "notebook_harness.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["notebook_harness"] = module
    return sys.modules["notebook_harness"]


def execute(nb: nbformat.NotebookNode, timeout: int = 900) -> nbformat.NotebookNode:
    """Run every cell top to bottom on a fresh kernel in notebooks/; raises on the first error."""
    from nbclient import NotebookClient

    harness = _notebook_harness()
    with harness.replaced_environ(harness.kernel_environ()):
        client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL_NAME, record_timing=False,
                                kernel_manager_class=harness.AsyncIPCKernelManager,
                                resources={"metadata": {"path": str(NOTEBOOK_DIR)}})  # fmt: skip
        client.execute()
    return nb


def run(ipynb: Path, timeout: int) -> None:
    """Sync the pair, execute the notebook at its full parameters, write it back with outputs, sync again."""
    sync(ipynb)
    nb = nbformat.read(str(ipynb), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    execute(nb, timeout=timeout)
    nbformat.validate(nb)
    nbformat.write(nb, str(ipynb))
    sync(ipynb)


def set_colab_cell(ipynb: Path, repo_url: str | None = None) -> bool:
    """Make the first code cell the Colab cell (tagged ``colab``); True if the notebook changed."""
    nb = nbformat.read(str(ipynb), as_version=4)
    source = colab_source(repo_url)
    code_cells = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    first = code_cells[0] if code_cells else len(nb.cells)
    cell = nb.cells[first] if code_cells else None
    if cell is not None and COLAB_TAG in cell.metadata.get("tags", []):
        if cell.source == source:
            return False
        cell.source = source
    else:
        new = nbformat.v4.new_code_cell(source, metadata={"tags": [COLAB_TAG]})
        new["id"] = "colab-setup"
        nb.cells.insert(first, new)
    nbformat.write(nb, str(ipynb))
    sync(ipynb)
    return True


def _resolve(names: list[str]) -> list[Path]:
    if not names:
        return pairs()
    found = []
    for name in names:
        stem = Path(name).stem
        path = NOTEBOOK_DIR / f"{stem}.ipynb"
        if not path.exists():
            raise SystemExit(f"error: no notebook {path.relative_to(REPO_ROOT)} (have: "
                             f"{', '.join(p.stem for p in pairs())})")  # fmt: skip
        found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="sync, re-execute and write back the given notebooks (default: all)")
    run_parser.add_argument("names", nargs="*", help="e.g. 03_heads")
    run_parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    sub.add_parser("check", help="exit 1 if a .ipynb and its .py twin hold different cells")
    sync_parser = sub.add_parser("sync", help="jupytext --sync the given notebooks (default: all)")
    sync_parser.add_argument("names", nargs="*")
    sub.add_parser("colab", help="(re)write the guarded Colab cell of every notebook from pyproject's URL")
    args = parser.parse_args(argv)

    if args.command == "check":
        problems = check()
        print("\n".join(problems) if problems else f"{len(pairs())} notebook pairs in step")
        return 1 if problems else 0
    if args.command == "colab":
        for ipynb in pairs():
            if set_colab_cell(ipynb):
                print(f"updated the Colab cell of {ipynb.relative_to(REPO_ROOT)} (run it again to refresh outputs)")
        return 0
    for ipynb in _resolve(args.names):
        if args.command == "sync":
            sync(ipynb)
        else:
            run(ipynb, args.timeout)
            print(f"ran {ipynb.relative_to(REPO_ROOT)} and its twin {ipynb.with_suffix('.py').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
