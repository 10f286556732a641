"""environment.yml (conda / Binder) and requirements.txt (make setup) agree with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
# conda-forge package name -> PyPI name, where they differ.
CONDA_TO_PYPI = {"pytorch": "torch"}
CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(.*)$")


def pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def requirements_of(strings: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(s) for s in strings]
    return {canonicalize_name(r.name): r for r in parsed}


def conda_environment() -> dict:
    return yaml.safe_load((REPO_ROOT / "environment.yml").read_text())


def conda_packages(env: dict) -> tuple[dict[str, str], list[str]]:
    """({normalized PyPI name: version spec} of the conda packages, the pip section)."""
    packages: dict[str, str] = {}
    pip: list[str] = []
    for entry in env["dependencies"]:
        if isinstance(entry, dict):
            pip.extend(entry.get("pip", []))
            continue
        name, spec = CONDA_SPEC.match(entry.strip()).groups()
        name = CONDA_TO_PYPI.get(name, name)
        packages[canonicalize_name(name)] = spec.replace(" ", "")
    return packages, pip


def pinned_requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
        assert match, f"requirements.txt: {line!r} is not an exact 'name==version' pin"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"requirements.txt pins {name} twice"
        pins[name] = match.group(2)
    return pins


def test_conda_packages_match_pyproject_dependencies_and_notebooks_extra():
    project = pyproject()
    expected = requirements_of(project["dependencies"] + project["optional-dependencies"]["notebooks"])
    env = conda_environment()
    packages, pip = conda_packages(env)
    assert packages.pop("python") == "=3.11"
    assert packages.pop("pip") == ""
    assert sorted(packages) == sorted(expected)
    for name, requirement in expected.items():
        assert packages[name] == str(requirement.specifier), f"{name}: conda {packages[name]!r} vs pyproject"


def test_conda_environment_channels_and_pip_section():
    env = conda_environment()
    assert env["channels"] == ["conda-forge"]
    assert env["name"] == "ssd_tutorial"
    assert env["dependencies"][-1] == {"pip": ["-e .[notebooks]"]}


def test_conda_name_mapping_is_applied():
    packages, _ = conda_packages({"dependencies": ["pytorch>=2.4", "Jupyter_Lab >= 4", {"pip": ["x"]}]})
    assert packages == {"torch": ">=2.4", "jupyter-lab": ">=4"}


def test_requirements_pin_every_dependency_and_extra_within_its_range():
    project = pyproject()
    strings = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        strings += extra
    pins = pinned_requirements()
    missing = sorted(name for name in requirements_of(strings) if name not in pins)
    assert missing == [], f"requirements.txt does not pin {missing}"
    for name, requirement in requirements_of(strings).items():
        assert requirement.specifier.contains(Version(pins[name]), prereleases=True), (
            f"requirements.txt pins {name}=={pins[name]}, outside pyproject's {requirement}")


def test_requirements_pin_the_tested_torch():
    pins = pinned_requirements()
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"


@pytest.mark.parametrize("name", ["torch", "torchvision", "numpy", "matplotlib", "papermill", "nbval", "jupyterlab"])
def test_environment_runs_the_pinned_versions(name):
    assert metadata.version(name) == pinned_requirements()[canonicalize_name(name)], "run `make setup`"
