"""Installs: which lock `make setup` / `make test` / CI install (scripts/setup_env.sh with a fake Python), the
Python it picks, the locks resolving on each platform (needs the registry: marked network), and the wheel with
its package data installed into a fresh venv (slow)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup_env.sh"
BASH = shutil.which("bash")

# A stand-in for pythonX.Y: logs its arguments, answers setup_env.sh's version questions, `-m venv DIR` copies
# itself to DIR/bin/python, and every other call (pip, ipykernel, imports) succeeds at once.
FAKE_PYTHON = """#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_LOG"
case "$1" in
    --version) echo "Python {version}.0" ;;
    -c) case "$2" in
            *'%d.%d.%d'*) echo "{version}.0" ;;
            *'%d.%d'*) echo "{version}" ;;
        esac ;;
    -m) if [ "$2" = venv ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi ;;
esac
exit 0
"""


def _fake_project(tmp_path: Path, versions: list[str]) -> tuple[Path, dict[str, str]]:
    """A project copy with setup_env.sh, pyproject.toml and the locks, and an environment whose PATH holds only
    fake pythonX.Y for ``versions`` and the few tools the scripts call."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(SETUP_SCRIPT, project / "scripts" / "setup_env.sh")
    shutil.copy2(REPO_ROOT / "pyproject.toml", project / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "requirements", project / "requirements")
    old = 1_000_000_000  # inputs older than any stamp the script writes
    for path in [project / "pyproject.toml", *(project / "requirements").iterdir()]:
        os.utime(path, (old, old))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "basename", "mkdir", "cp", "touch", "sh", "grep", "sed", "rm"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for version in versions:
        fake = bin_dir / f"python{version}"
        fake.write_text(FAKE_PYTHON.format(version=version))
        fake.chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "FAKE_LOG": str(tmp_path / "calls.log")}
    return project, env


def _setup(project: Path, env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(project / "scripts" / "setup_env.sh")], cwd=project, env=env | extra,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip


def _calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    calls = log.read_text().splitlines() if log.exists() else []
    log.write_text("")
    return calls


def test_setup_dev_installs_the_dev_lock_then_stays_up_to_date(tmp_path):
    project, env = _fake_project(tmp_path, ["3.11"])
    done = _setup(project, env, SETUP="dev")
    assert done.returncode == 0, done.stderr
    calls = _calls(env)
    assert "python -m pip install -r requirements/dev.txt" in calls
    assert "python -m pip install --no-deps --no-build-isolation -e ." in calls
    assert not any("learner.txt" in call for call in calls)
    assert (project / ".venv" / ".setup-dev.stamp").is_file()
    assert not (project / ".venv" / ".setup-learner.stamp").exists()

    again = _setup(project, env, SETUP="dev")
    assert again.returncode == 0 and "up to date for requirements/dev.txt" in again.stdout
    assert not any("pip install" in call for call in _calls(env))
    # the dev lock holds every learner pin, so `make lab` after `make test` installs nothing either
    learner = _setup(project, env, SETUP="learner")
    assert learner.returncode == 0 and "up to date for requirements/learner.txt" in learner.stdout
    assert not any("pip install" in call for call in _calls(env))


def test_setup_learner_is_the_default_and_reinstalls_when_its_lock_changes(tmp_path):
    project, env = _fake_project(tmp_path, ["3.11"])
    assert _setup(project, env).returncode == 0
    assert "python -m pip install -r requirements/learner.txt" in _calls(env)
    assert (project / ".venv" / ".setup-learner.stamp").is_file()
    assert "up to date" in _setup(project, env).stdout
    _calls(env)
    (project / "requirements" / "learner.txt").touch()  # a new lock: newer than the stamp
    os.utime(project / ".venv" / ".setup-learner.stamp", (1_000_000_001, 1_000_000_001))
    done = _setup(project, env)
    assert done.returncode == 0 and "python -m pip install -r requirements/learner.txt" in _calls(env)


def test_setup_cpu_takes_torch_from_the_cpu_index_and_drops_the_cuda_wheels(tmp_path):
    project, env = _fake_project(tmp_path, ["3.11"])
    done = _setup(project, env, CPU="1")
    assert done.returncode == 0, done.stderr
    calls = _calls(env)
    assert ("python -m pip install --no-deps --index-url https://download.pytorch.org/whl/cpu "
            "torch==2.14.1 torchvision==0.29.1") in calls  # fmt: skip
    assert "python -m pip install -r .venv/.setup-cpu-lock.txt" in calls
    assert not any("-r requirements/learner.txt" in call for call in calls)
    kept = (project / ".venv" / ".setup-cpu-lock.txt").read_text()
    assert "numpy==" in kept and "torch==2.14.1" in kept
    assert not any(line.startswith(("nvidia-", "cuda-", "triton==")) for line in kept.splitlines())
    # remembered: a later install (here the dev lock) stays CPU-only without CPU=1
    assert _setup(project, env, SETUP="dev").returncode == 0
    assert "python -m pip install -r .venv/.setup-cpu-lock.txt" in _calls(env)
    assert "pytest==" in (project / ".venv" / ".setup-cpu-lock.txt").read_text()
    # CPU=0 goes back to the lock as it is
    os.utime(project / ".venv" / ".setup-dev.stamp", (1, 1))
    assert _setup(project, env, SETUP="dev", CPU="0").returncode == 0
    assert "python -m pip install -r requirements/dev.txt" in _calls(env)
    assert not (project / ".venv" / ".setup-cpu").exists()


def test_setup_rejects_an_unknown_kind(tmp_path):
    project, env = _fake_project(tmp_path, ["3.11"])
    done = _setup(project, env, SETUP="full")
    assert done.returncode != 0 and "SETUP must be 'learner' or 'dev', got 'full'" in done.stderr
    assert not (project / ".venv").exists()


def test_setup_prefers_the_tested_python(tmp_path):
    project, env = _fake_project(tmp_path, ["3.13", "3.12", "3.11"])
    done = _setup(project, env)
    assert done.returncode == 0, done.stderr
    assert "Creating .venv with python3.11 (Python 3.11.0)" in done.stdout
    assert "WARNING" not in done.stderr
    assert "python3.11 -m venv .venv" in _calls(env)


def test_setup_falls_back_to_a_newer_python_with_a_warning(tmp_path):
    project, env = _fake_project(tmp_path, ["3.13"])
    done = _setup(project, env)
    assert done.returncode == 0, done.stderr
    assert "Creating .venv with python3.13 (Python 3.13.0)" in done.stdout
    assert "WARNING: using Python 3.13 (python3.13): the locks were tested with Python 3.11" in done.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_and_ci_install_the_dev_lock():
    def dry(target: str) -> str:
        return subprocess.run(["make", "-n", target], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                              check=True).stdout  # fmt: skip

    assert "SETUP=dev bash scripts/setup_env.sh" in dry("test")
    assert "SETUP=learner bash scripts/setup_env.sh" in dry("lab")
    assert "SETUP=dev bash scripts/setup_env.sh" in dry("setup-dev")
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make setup-dev$", ci, re.M) and re.search(r"^make test ", ci, re.M)
    dev = (REPO_ROOT / "requirements" / "dev.txt").read_text()
    for tool in ("pytest", "pytest-timeout", "hypothesis", "ruff", "playwright", "nbval"):
        assert re.search(rf"^{tool}==", dev, re.M), f"dev lock lacks {tool}"


# --- the locks on each platform (registry needed) --------------------------------------------------------------

# uv's target triples; torch 2.14.1's macOS wheels are macosx_14_0_arm64 only, so macOS means 14 (Sonoma) or newer.
PLATFORMS = {
    "x86_64-unknown-linux-gnu": {},
    "aarch64-unknown-linux-gnu": {},
    "aarch64-apple-darwin": {"MACOSX_DEPLOYMENT_TARGET": "14.0"},
    "x86_64-pc-windows-msvc": {},
}
NETWORK_ERRORS = re.compile(r"dns error|failed to fetch|error sending request|connect|timed out|network", re.I)


def _uv() -> str | None:
    for candidate in (os.environ.get("UV"), str(Path(sys.executable).parent / "uv"), shutil.which("uv")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.mark.network
@pytest.mark.parametrize("lock", ["learner", "dev"])
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_lock_resolves_on_each_platform(tmp_path, lock, platform):
    """Resolving the lock's own pins for the platform succeeds (a wheel exists for each) and needs nothing else."""
    uv = _uv()
    if uv is None:
        pytest.skip("uv not installed (it comes with `make setup-dev`; or set UV=/path/to/uv)")
    lock_path = REPO_ROOT / "requirements" / f"{lock}.txt"
    command = [uv, "pip", "compile", str(lock_path), "--python-platform", platform, "--python-version", "3.11",
               "--no-header", "--no-annotate", "--quiet", "-o", str(tmp_path / "out.txt")]  # fmt: skip
    env = os.environ | PLATFORMS[platform] | {"UV_HTTP_TIMEOUT": "30", "NO_COLOR": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.skip("package registry did not answer in 300 s")
    if done.returncode != 0 and NETWORK_ERRORS.search(done.stderr) and "No solution found" not in done.stderr:
        pytest.skip(f"package registry unreachable: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, f"{lock} lock does not resolve on {platform}:\n{done.stderr}"
    resolved = {line.split(" ;")[0].strip() for line in (tmp_path / "out.txt").read_text().splitlines()
                if "==" in line}  # fmt: skip
    pinned = {re.sub(r"\s*;.*", "", line).strip() for line in lock_path.read_text().splitlines() if "==" in line}
    assert "torch==2.14.1" in resolved and "torchvision==0.29.1" in resolved
    assert resolved <= pinned, f"{platform} needs packages the lock lacks: {sorted(resolved - pinned)}"
    cuda = {p for p in resolved if p.startswith(("nvidia-", "triton=="))}
    assert bool(cuda) == ("linux" in platform), cuda


# --- the wheel, installed (not editable) -----------------------------------------------------------------------


def _site_packages(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
    return Path(out.stdout.strip())


@pytest.mark.slow
def test_wheel_ships_the_checkpoint_and_works_installed(tmp_path):
    # Build from a copy of the sources, so nothing (build/, *.egg-info) lands in the checkout.
    source = tmp_path / "src"
    shutil.copytree(REPO_ROOT / "ssd_tutorial", source / "ssd_tutorial",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--no-input", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(wheels),
                    str(source)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = wheels.glob("ssd_tutorial-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "ssd_tutorial/pretrained/tiny_shapes.pt" in archive.namelist()

    # A fresh venv with the wheel alone; its dependencies come from this environment's site-packages, added as
    # a plain path after the venv's own (so this environment's editable ssd_tutorial is not seen).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    (_site_packages(python) / "outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")} | {"MPLBACKEND": "Agg"}
    check = ("import ssd_tutorial, sys; m = ssd_tutorial.load_pretrained('tiny_shapes'); "
             "print(ssd_tutorial.__file__); print(type(m).__name__, m.cfg.name, m.training)")  # fmt: skip
    loaded = subprocess.run([str(python), "-c", check], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    where, summary = loaded.stdout.strip().splitlines()
    assert Path(where).is_relative_to(venv), f"imported {where}, not the installed wheel"
    assert summary == "SSD tiny_shapes False"

    evaluated = subprocess.run([str(python), "-m", "ssd_tutorial", "evaluate", "--checkpoint", "tiny_shapes",
                                "--num-images", "8", "--device", "cpu"], cwd=elsewhere, env=env,
                               capture_output=True, text=True, timeout=600)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith("model knows: circle, square, triangle\n8 images, checkpoint tiny_shapes")
    map50 = float(re.search(r"^mAP@0\.5\s+(\S+)", evaluated.stdout, re.M).group(1))
    assert 0.0 < map50 <= 1.0
    assert list(elsewhere.iterdir()) == []  # evaluate writes nothing
