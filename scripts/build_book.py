"""Build the book: a static HTML site of the committed notebooks (never re-executed) and an API reference.

    .venv/bin/python scripts/build_book.py            # -> build/book/html/index.html   (make book)

Steps: assemble the Sphinx source in build/book/src (book/conf.py and pages, notebooks/*.ipynb under notebooks/ so
the site mirrors the repository, a generated api.rst), fetch ipywidgets' HTML manager and MathJax with ``npm ci``
(pinned in book/package-lock.json) so saved widget state and equations render without a CDN, then ``sphinx-build
-W`` (a warning — a broken cross-reference, a missing figure — fails the build).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOK_DIR = REPO_ROOT / "book"
LINKED_PAGES = ("benchmarks/RESULTS.md",)
INTRODUCED = re.compile(r"Introduced in:\s*(\d\d_[a-z0-9_]+)\.ipynb")


def introduced_in(obj: object) -> str | None:
    """The notebook stem named by ``Introduced in: NN_name.ipynb`` in the object's docstring, else its module's."""
    for text in (inspect.getdoc(obj) if not _is_preset(obj) else None,
                 getattr(importlib.import_module(_module_of(obj)), "__doc__", None)):  # fmt: skip
        match = INTRODUCED.search(text or "")
        if match:
            return match.group(1)
    return None


def _is_preset(obj: object) -> bool:
    return type(obj).__name__ == "SSDConfig"


def _module_of(obj: object) -> str:
    return "ssd_tutorial.config" if _is_preset(obj) else obj.__module__


def api_page(notebooks: list[str]) -> str:
    """api.rst: every name of ``ssd_tutorial.__all__`` grouped by module, each with its autodoc entry and a link to
    the notebook that introduces it. Raises when a name names no notebook, or one that does not exist."""
    import ssd_tutorial

    by_module: dict[str, list[tuple[str, object]]] = {}
    for name in ssd_tutorial.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(ssd_tutorial, name)
        by_module.setdefault(_module_of(obj), []).append((name, obj))

    title = "API reference"
    lines = [title, "=" * len(title), "",
             "The public names of the package ``ssd_tutorial`` (``import ssd_tutorial as ssd``), module by module, "
             "from their docstrings. Each entry links to the notebook that introduces it.", ""]
    missing = []
    for module, entries in by_module.items():
        lines += [f"``{module}``", "-" * (len(module) + 4), ""]
        for name, obj in entries:
            notebook = introduced_in(obj)
            if notebook is None or notebook not in notebooks:
                missing.append(f"{module}.{name} (found {notebook!r})")
                continue
            kind = "autoclass" if inspect.isclass(obj) else "autofunction" if callable(obj) else "autodata"
            lines += [f".. {kind}:: {module}.{name}"]
            if kind == "autodata":
                lines += ["   :no-value:", "", f"   The preset ``{obj.name}``: {obj.image_size} px input, "
                          f"{obj.num_classes} classes, {obj.num_levels} levels, {obj.num_anchors} anchors, backbone "
                          f"``{obj.backbone}``."]  # fmt: skip
            lines += ["", f"   *Introduced in:* :doc:`notebooks/{notebook}`", ""]
    if missing:
        raise SystemExit("error: public names without an 'Introduced in: NN_name.ipynb' line (in their docstring or "
                         "their module's): " + ", ".join(missing))  # fmt: skip
    return "\n".join(lines)


def assemble(src: Path) -> None:
    """The Sphinx source folder: book/*, notebooks/*.ipynb, api.md, the widget manager's JavaScript."""
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(BOOK_DIR, src, ignore=shutil.ignore_patterns("node_modules", "package*.json", "__pycache__"))
    (src / "notebooks").mkdir()
    stems = []
    for ipynb in sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copy(ipynb, src / "notebooks" / ipynb.name)
        stems.append(ipynb.stem)
    (src / "api.rst").write_text(api_page(stems))
    # Pages of the repository that the notebooks link to (relative links such as ../benchmarks/RESULTS.md).
    for page in LINKED_PAGES:
        (src / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / page, src / page)
    static = src / "_static"
    modules = node_modules()
    (static / "widgets").mkdir(parents=True, exist_ok=True)
    shutil.copy(modules / "@jupyter-widgets" / "html-manager" / "dist" / "embed.js", static / "widgets" / "embed.js")
    mathjax = modules / "mathjax" / "es5"
    shutil.copytree(mathjax, static / "mathjax", ignore=shutil.ignore_patterns("*.map", "sre", "a11y", "ui"))


def node_modules() -> Path:
    """book/node_modules, installed by ``npm ci`` from book/package-lock.json when missing (ipywidgets' HTML
    manager, MathJax)."""
    modules = BOOK_DIR / "node_modules"
    wanted = [modules / "@jupyter-widgets" / "html-manager" / "dist" / "embed.js", modules / "mathjax" / "es5"]
    if not all(path.exists() for path in wanted):
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("error: the book needs Node.js's npm to fetch ipywidgets' HTML manager and MathJax "
                             "(book/package.json); install Node.js 18+ and run `make book` again")  # fmt: skip
        subprocess.run([npm, "ci", "--silent", "--no-audit", "--no-fund"], cwd=BOOK_DIR, check=True)
    return modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "book", help="build folder")
    args = parser.parse_args(argv)
    src, html = args.out / "src", args.out / "html"
    assemble(src)
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d",
               str(args.out / "doctrees"), str(src), str(html)]  # fmt: skip
    done = subprocess.run(command, env={**__import__("os").environ, "SSD_BOOK_REPO_ROOT": str(REPO_ROOT)})
    if done.returncode != 0:
        return done.returncode
    print(f"book written to {(html / 'index.html').relative_to(REPO_ROOT) if html.is_relative_to(REPO_ROOT) else html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
