"""The notebooks are jupytext pairs (notebooks/NN_name.ipynb + NN_name.py, percent format) — scripts/notebooks.py.

- every pair holds the same cells (CI fails on drift and names the command that fixes it);
- an edit on either side reaches the other through ``jupytext --sync`` with the project's jupytext.toml;
- the .py twins are plain Python that ruff lints (Makefile) and that runs as a script;
- every notebook starts with the guarded Colab cell, built from the one repository URL in pyproject.toml, and that
  cell really clones and installs the project when ``google.colab`` is present (a local clone stands in for GitHub).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import jupytext
import nbformat
import pytest
from notebook_harness import REPO_ROOT

spec = importlib.util.spec_from_file_location("notebook_tool", REPO_ROOT / "scripts" / "notebooks.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

PAIRS = tool.pairs()
IDS = [p.stem for p in PAIRS]


def test_every_notebook_has_a_py_twin_and_no_twin_is_orphaned():
    assert len(PAIRS) == 8, IDS
    twins = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert twins == IDS


def test_pairs_are_in_step():
    problems = tool.check()
    assert problems == [], "notebook pairs drifted:\n" + "\n".join(problems)


def test_check_reports_drift_with_the_fix_command(tmp_path, monkeypatch):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    source = PAIRS[0]
    shutil.copy(source, nb_dir / source.name)
    shutil.copy(source.with_suffix(".py"), nb_dir / f"{source.stem}.py")
    twin = nb_dir / f"{source.stem}.py"
    twin.write_text(twin.read_text().replace("# # 01 — The constants of SSD512", "# # 01 — Edited title", 1))
    monkeypatch.setattr(tool, "NOTEBOOK_DIR", nb_dir)
    monkeypatch.setattr(tool, "REPO_ROOT", tmp_path)
    problems = tool.check()
    assert len(problems) == 1
    assert "cell 0 differs (text)" in problems[0] and "jupytext --sync notebooks/01_constants.ipynb" in problems[0]


def _copy_pair(tmp_path, stem="03_heads"):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    shutil.copy(REPO_ROOT / "notebooks" / "jupytext.toml", nb_dir)
    for suffix in (".ipynb", ".py"):
        shutil.copy(REPO_ROOT / "notebooks" / f"{stem}{suffix}", nb_dir)
    return nb_dir / f"{stem}.ipynb", nb_dir / f"{stem}.py"


def _sync(path):
    done = subprocess.run([sys.executable, "-m", "jupytext", "--sync", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_edit_in_the_notebook_reaches_the_py_twin(tmp_path):
    ipynb, twin = _copy_pair(tmp_path)
    nb = nbformat.read(str(ipynb), as_version=4)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    index = code[1]  # the first code cell after the Colab cell
    nb.cells[index].source += "\nprint('edited in JupyterLab')"
    outputs_before = [c.get("outputs") for c in nb.cells if c.cell_type == "code"]
    nbformat.write(nb, str(ipynb))
    os.utime(twin, (1, 1))  # the notebook is the newer side
    _sync(ipynb)
    assert "print('edited in JupyterLab')" in twin.read_text()
    after = nbformat.read(str(ipynb), as_version=4)
    assert [c.get("outputs") for c in after.cells if c.cell_type == "code"] == outputs_before


def test_edit_in_the_py_twin_reaches_the_notebook_and_keeps_outputs(tmp_path):
    ipynb, twin = _copy_pair(tmp_path)
    before = nbformat.read(str(ipynb), as_version=4)
    text = twin.read_text()
    assert "# # 03 — Heads" in text
    twin.write_text(text.replace("# # 03 — Heads", "# # 03 — Heads (edited in an editor)", 1))
    os.utime(ipynb, (1, 1))  # the .py is the newer side
    _sync(twin)
    after = nbformat.read(str(ipynb), as_version=4)
    assert after.cells[0].source.startswith("# 03 — Heads (edited in an editor)")
    assert [c.get("outputs") for c in after.cells if c.cell_type == "code"] == \
        [c.get("outputs") for c in before.cells if c.cell_type == "code"]  # fmt: skip
    assert after.metadata["ssd_tutorial"] == before.metadata["ssd_tutorial"]


@pytest.mark.parametrize("ipynb", PAIRS, ids=IDS)
def test_ci_parameters_and_tags_live_in_the_py_twin(ipynb):
    script = jupytext.read(ipynb.with_suffix(".py"))
    notebook = nbformat.read(str(ipynb), as_version=4)
    assert script.metadata["ssd_tutorial"] == notebook.metadata["ssd_tutorial"]
    tags = [t for c in script.cells for t in c.metadata.get("tags", [])]
    assert "parameters" in tags
    # nbval markers are cell tags, never comments a learner has to read past
    assert not any("NBVAL_" in c.source for c in notebook.cells)


@pytest.mark.parametrize("ipynb", PAIRS, ids=IDS)
def test_first_code_cell_is_the_colab_cell_with_the_project_url(ipynb):
    nb = nbformat.read(str(ipynb), as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert tool.COLAB_TAG in first.metadata.get("tags", [])
    assert first.source == tool.colab_source(tool.repository_url())
    assert first.outputs == []  # a no-op outside Colab


def test_py_twin_compiles_as_a_script():
    for ipynb in PAIRS:
        source = ipynb.with_suffix(".py").read_text()
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        compile("\n".join(lines), str(ipynb.with_suffix(".py")), "exec")


def test_colab_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a} outside Colab"))
    namespace: dict = {}
    exec(compile(tool.colab_source("https://example.org/me/ssd_tutorial"), "<colab cell>", "exec"), namespace)
    assert "REPO_URL" not in namespace


@pytest.mark.slow
def test_colab_cell_clones_installs_and_enables_widgets_on_colab(tmp_path, monkeypatch):
    """The cell's real code path: git clone (a local clone of this repository stands in for GitHub), pip install
    -e into a throwaway venv that sees the test environment's packages (nothing is downloaded), widget manager on."""
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the throwaway venv must import the cloned package
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(REPO_ROOT), str(origin)], check=True)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # the throwaway venv sees this environment's packages (pip, setuptools, torch ...) after its own
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    import sysconfig

    (Path(purelib) / "zz_test_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    checkout = tmp_path / "content" / "ssd_tutorial"
    source = tool.colab_source(f"file://{origin}").replace('"/content/ssd_tutorial"', repr(str(checkout)))
    source = source.replace("[sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\",",
                            "[sys.executable, \"-m\", \"pip\", \"install\", \"--quiet\", \"--no-deps\", "
                            "\"--no-build-isolation\",")  # fmt: skip
    assert "--no-deps" in source
    enabled = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(True))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "executable", str(python))
    exec(compile(source, "<colab cell>", "exec"), {})
    assert (checkout / "ssd_tutorial" / "__init__.py").exists()
    assert sys.path[0] == str(checkout) and enabled == [True]
    done = subprocess.run([str(python), "-c", "import ssd_tutorial; print(ssd_tutorial.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(checkout / "ssd_tutorial" / "__init__.py")
