"""The `make lab` path: JupyterLab starts with the Makefile's flags and serves the notebooks; and
scripts/setup_env.sh (behind `make setup`) refuses a broken .venv or a missing Python 3.11 with a clear message,
deleting nothing."""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
from browser_helpers import free_port, get_json, jupyter_lab

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_env.sh"


def makefile_lab_args() -> list[str]:
    """The arguments that `make lab` gives to `jupyter lab` (from `make -n`, so variables are expanded)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed (README and .ci/run require it)")
    done = subprocess.run(["make", "--no-print-directory", "-n", "lab"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=30, check=True)  # fmt: skip
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        if "jupyter" in words and "lab" in words[words.index("jupyter"):]:
            return words[words.index("lab", words.index("jupyter")) + 1:]
    raise AssertionError(f"`make -n lab` runs no `jupyter lab`:\n{done.stdout}")


def served_root(args: list[str]) -> Path:
    """The folder JupyterLab serves with these arguments, started from the repository root (as make does)."""
    root = REPO_ROOT
    for arg in args:
        for flag in ("--notebook-dir=", "--ServerApp.root_dir=", "--ServerApp.notebook_dir="):
            if arg.startswith(flag):
                root = (REPO_ROOT / arg[len(flag):]).resolve()
    return root


def test_makefile_lab_serves_the_notebooks_folder():
    args = makefile_lab_args()
    assert served_root(args) in (REPO_ROOT, REPO_ROOT / "notebooks"), args


@pytest.mark.slow
def test_jupyter_lab_starts_and_lists_notebooks(tmp_path):
    args = makefile_lab_args()
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyter", "lab", *args, "--no-browser", f"--ServerApp.port={port}",
               "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1",
               f"--IdentityProvider.token={token}"]  # fmt: skip
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "config"))  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with jupyter_lab(command, cwd=REPO_ROOT, env=env, log=tmp_path / "lab.log", base=base, token=token):
        relative = (REPO_ROOT / "notebooks").relative_to(served_root(args)).as_posix()
        api_path = "" if relative == "." else relative
        listing = get_json(f"{base}/api/contents/{api_path}", token)
        names = {item["name"] for item in listing["content"] if item["type"] == "notebook"}
        assert "01_constants.ipynb" in names, names
        # jupytext's contents manager also opens each .py twin (percent format) as a notebook
        ipynb = {p.name for p in (REPO_ROOT / "notebooks").glob("*.ipynb")}
        assert names == ipynb | {name.replace(".ipynb", ".py") for name in ipynb}

        notebook_path = "/".join(part for part in (api_path, "01_constants.ipynb") if part)
        notebook = get_json(f"{base}/api/contents/{notebook_path}", token)
        assert notebook["content"]["metadata"]["kernelspec"]["name"] == "python3"
        specs = get_json(f"{base}/api/kernelspecs", token)
        assert "python3" in specs["kernelspecs"], sorted(specs["kernelspecs"])

        with pytest.raises(urllib.error.HTTPError) as denied:  # the token is required
            get_json(f"{base}/api/contents/{api_path}", None)
        assert denied.value.code == 403


# --- scripts/setup_env.sh refuses, deletes nothing -------------------------------------------------------------


def _project_copy(tmp_path: Path) -> Path:
    """A project folder with a copy of scripts/setup_env.sh (it cds to the script's parent's parent)."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(SETUP_SCRIPT, project / "scripts" / "setup_env.sh")
    for name in ("requirements.txt", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, project / name)
    return project


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _run_setup(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    return subprocess.run([bash, str(project / "scripts" / "setup_env.sh")], cwd=project, env=env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def _tools_only_path(tmp_path: Path) -> str:
    """A PATH with only the external tools the script needs before it looks for Python (no python* at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname",):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return str(bin_dir)


def test_setup_refuses_a_broken_venv_and_keeps_it(tmp_path):
    project = _project_copy(tmp_path)
    broken_python = _executable(project / ".venv" / "bin" / "python", "#!/bin/sh\nexit 1\n")
    user_file = project / ".venv" / "my_notes.txt"
    user_file.write_text("mine")
    other = project / "notebook_work.ipynb"
    other.write_text("{}")

    done = _run_setup(project, dict(os.environ))

    assert done.returncode != 0
    assert "does not run Python 3.11+" in done.stderr and "Nothing was deleted" in done.stderr, done.stderr
    assert "mv .venv .venv.broken" in done.stderr
    assert broken_python.read_text() == "#!/bin/sh\nexit 1\n"
    assert user_file.read_text() == "mine" and other.read_text() == "{}"
    assert list((project / ".venv").glob(".setup*stamp")) == []  # no stamp of either lock


def test_setup_without_python311_explains_and_creates_nothing(tmp_path):
    project = _project_copy(tmp_path)
    env = {"PATH": _tools_only_path(tmp_path), "HOME": str(tmp_path), "PYTHON": "/bin/false"}

    done = _run_setup(project, env)

    assert done.returncode != 0
    assert "needs Python 3.11 or newer" in done.stderr, done.stderr
    assert "no python3 on PATH" in done.stderr and "PYTHON=" in done.stderr
    assert not (project / ".venv").exists()


def test_setup_names_the_too_old_python_it_found(tmp_path):
    project = _project_copy(tmp_path)
    path = _tools_only_path(tmp_path)
    # A python3 that says it is 3.8 and fails the version check, as an old interpreter would.
    _executable(Path(path) / "python3", '#!/bin/sh\n[ "$1" = "--version" ] && echo "Python 3.8.10" && exit 0\nexit 1\n')

    done = _run_setup(project, {"PATH": path, "HOME": str(tmp_path)})

    assert done.returncode != 0
    assert "needs Python 3.11 or newer; found: Python 3.8.10" in done.stderr, done.stderr
    assert not (project / ".venv").exists()
