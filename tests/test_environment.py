"""The locks (requirements/learner.txt, requirements/dev.txt), pyproject.toml, environment.yml and the running
environment agree. All offline: tests/test_install.py has the per-platform resolution that needs the registry."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCKS = {"learner": REPO_ROOT / "requirements" / "learner.txt", "dev": REPO_ROOT / "requirements" / "dev.txt"}
PIN = re.compile(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+!\-]+)(?:\s*;\s*(.+))?")

# packaging marker environments of the platforms the locks must serve (Python 3.11).
PLATFORMS = {
    "linux-x86_64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                     "os_name": "posix"},
    "linux-aarch64": {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "aarch64",
                      "os_name": "posix"},
    "macos-arm64": {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64",
                    "os_name": "posix"},
    "windows-x86_64": {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64",
                       "os_name": "nt"},
}  # fmt: skip
PY311 = {"python_version": "3.11", "python_full_version": "3.11.7", "implementation_name": "cpython",
         "platform_python_implementation": "CPython"}  # fmt: skip


def load_lock(path: Path) -> list[tuple[str, str, Marker | None]]:
    """(normalized name, version, marker or None) of every pin of a uv-compiled lock."""
    pins = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.fullmatch(line)
        if match is None:
            raise ValueError(f"{path.name}:{number}: {raw!r} is not an exact 'name==version [; marker]' pin")
        name, version, marker = match.groups()
        pins.append((canonicalize_name(name), version, Marker(marker) if marker else None))
    return pins


def versions(pins) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, version, _ in pins:
        out.setdefault(name, set()).add(version)
    return out


def pins_for(pins, env: dict[str, str]) -> dict[str, str]:
    """{name: version} of the pins whose marker holds in ``env``; a name pinned twice there is an error."""
    chosen: dict[str, str] = {}
    for name, version, marker in pins:
        if marker is None or marker.evaluate(env):
            if name in chosen:
                raise ValueError(f"{name} is pinned twice for {env}: {chosen[name]} and {version}")
            chosen[name] = version
    return chosen


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def requirements_of(extras: list[str]) -> list[Requirement]:
    """The package's dependencies and those of ``extras``, self-references (ssd_tutorial[a,b]) expanded."""
    project = pyproject()
    todo, seen, out = list(extras), set(), [Requirement(s) for s in project["dependencies"]]
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for string in project["optional-dependencies"][extra]:
            requirement = Requirement(string)
            if canonicalize_name(requirement.name) == "ssd-tutorial":
                todo.extend(requirement.extras)
            else:
                out.append(requirement)
    return out


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_is_exact_pins_only_and_parses(lock):
    pins = load_lock(LOCKS[lock])
    assert len(pins) > 50
    for env in PLATFORMS.values():
        pins_for(pins, env | PY311)  # one version per package on each platform


def test_load_lock_rejects_a_range(tmp_path):
    bad = tmp_path / "bad_lock.txt"
    bad.write_text("torch>=2.4\n")
    with pytest.raises(ValueError, match="bad_lock.txt:1: 'torch>=2.4' is not an exact"):
        load_lock(bad)


@pytest.mark.parametrize(("lock", "extras"), [("learner", ["notebooks"]), ("dev", ["dev"])])
def test_lock_pins_every_requirement_within_its_range(lock, extras):
    pinned = versions(load_lock(LOCKS[lock]))
    for requirement in requirements_of(extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{LOCKS[lock].name} does not pin {name} ({requirement})"
        for version in pinned[name]:
            assert requirement.specifier.contains(Version(version), prereleases=True), (
                f"{LOCKS[lock].name} pins {name}=={version}, outside pyproject's {requirement}")


def test_learner_lock_is_what_make_lab_needs_and_no_more():
    pinned = versions(load_lock(LOCKS["learner"]))
    for name in ("torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "tqdm", "pycocotools", "jupyterlab",
                 "ipykernel", "papermill", "jupytext"):
        assert name in pinned, name
    for name in ("pytest", "pytest-timeout", "hypothesis", "ruff", "playwright", "nbval", "tensorboard", "clearml",
                 "torchmetrics", "uv", "sphinx", "myst-nb"):
        assert name not in pinned, f"learners should not install {name}"


def test_dev_lock_holds_every_learner_pin_at_the_same_version():
    learner, dev = versions(load_lock(LOCKS["learner"])), versions(load_lock(LOCKS["dev"]))
    for name, pinned in learner.items():
        assert dev.get(name) == pinned, f"{name}: learner {sorted(pinned)} vs dev {sorted(dev.get(name, []))}"
    for name in ("pytest", "pytest-timeout", "hypothesis", "ruff", "playwright", "nbval", "tensorboard", "clearml",
                 "torchmetrics", "uv", "sphinx", "myst-nb", "sphinx-book-theme"):
        assert name in dev, f"dev lock lacks {name}"


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_locks_pin_the_tested_torch(lock):
    pinned = versions(load_lock(LOCKS[lock]))
    assert pinned["torch"] == {"2.14.1"} and pinned["torchvision"] == {"0.29.1"}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_cuda_packages_carry_a_linux_marker(lock):
    """torch's CUDA wheels (nvidia-*, cuda-*, triton) only on Linux: macOS and Windows never see them."""
    cuda = [(n, v, m) for n, v, m in load_lock(LOCKS[lock]) if re.match(r"(nvidia-|cuda-|triton$)", n)]
    assert len(cuda) >= 10
    for name, _, marker in cuda:
        assert marker is not None and 'sys_platform == "linux"' in str(marker), f"{name} has no linux marker"
        assert not marker.evaluate(PLATFORMS["macos-arm64"] | PY311), name
        assert not marker.evaluate(PLATFORMS["windows-x86_64"] | PY311), name
    assert {n for n, _, m in cuda if m.evaluate(PLATFORMS["linux-x86_64"] | PY311)} >= {"triton", "nvidia-cublas"}


def test_marker_check_catches_a_bare_cuda_pin():
    bare = [("nvidia-cublas", "13.1.1.3", None), ("triton", "3.8.0", Marker("sys_platform == 'linux'"))]
    assert pins_for(bare, PLATFORMS["macos-arm64"] | PY311) == {"nvidia-cublas": "13.1.1.3"}


def _make_environment():
    spec = importlib.util.spec_from_file_location("make_environment", REPO_ROOT / "scripts" / "make_environment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_environment_yml_is_generated_from_the_learner_lock():
    make_environment = _make_environment()
    text = (REPO_ROOT / "environment.yml").read_text()
    assert text == make_environment.environment_yml(LOCKS["learner"].read_text()), "run `make environment.yml`"
    env = yaml.safe_load(text)
    assert env["name"] == "ssd_tutorial" and env["channels"] == ["conda-forge"]
    # conda gives only Python and pip: every other version comes from the learner lock
    assert env["dependencies"] == ["python=3.11", "pip", {"pip": ["-r requirements/learner.txt", "-e ."]}]


def test_environment_python_is_the_locks_and_setups():
    make_environment = _make_environment()
    python = make_environment.lock_python(LOCKS["learner"].read_text())
    assert python == make_environment.lock_python(LOCKS["dev"].read_text()) == "3.11"
    assert f"TESTED={python}\n" in (REPO_ROOT / "scripts" / "setup_env.sh").read_text()
    assert f"LOCK_PYTHON := {python}\n" in (REPO_ROOT / "Makefile").read_text()
    with pytest.raises(ValueError, match="--python-version"):
        make_environment.lock_python("numpy==2.4.6\n")


# What `make setup` / `make setup-dev` installed is what the locks say (run `make setup-dev` after a lock change).
RUNTIME = ["torch", "torchvision", "numpy", "matplotlib", "pycocotools", "papermill", "jupyterlab", "jupytext"]
TOOLS = ["pytest", "pytest-timeout", "hypothesis", "ruff", "playwright", "nbval", "tensorboard", "torchmetrics"]


@pytest.mark.parametrize("name", RUNTIME + TOOLS)
def test_environment_runs_the_pinned_versions(name):
    here = pins_for(load_lock(LOCKS["dev"]), {})  # packaging fills in this machine's environment
    assert metadata.version(name) == here[canonicalize_name(name)], "run `make setup-dev`"


def test_every_installed_locked_package_has_its_pinned_version():
    here = pins_for(load_lock(LOCKS["dev"]), {})
    wrong = {}
    for name, version in here.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a package this environment lacks is the named tests' business
        if canonicalize_name(installed) != canonicalize_name(version) and Version(installed) != Version(version):
            wrong[name] = f"{installed} installed, {version} locked"
    assert wrong == {}, "run `make setup-dev`"
