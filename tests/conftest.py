"""Fixtures shared by the dataset tests (test_voc.py, test_coco.py): the tiny datasets in data/fixtures/, the
script that makes them (scripts/make_fixtures.py), and one fresh run of it for the reproducibility checks."""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "data" / "fixtures"


@pytest.fixture(scope="session")
def make_fixtures() -> ModuleType:
    """scripts/make_fixtures.py as a module (``voc_samples()``, ``coco_samples()``, ``main(argv)``)."""
    spec = importlib.util.spec_from_file_location("make_fixtures", REPO / "scripts" / "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fresh_fixtures(make_fixtures: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``voc/`` and ``coco/`` made anew by ``make_fixtures.py --out`` (once per session: one run
    writes both datasets); the tests compare it with the committed data/fixtures/ and must not change it."""
    out = tmp_path_factory.mktemp("fresh_fixtures")
    make_fixtures.main(["--out", str(out)])
    return out


@pytest.fixture
def fixture_copy(tmp_path: Path) -> Callable[[str], Path]:
    """``fixture_copy("voc")``: a copy of data/fixtures/voc in the test's tmp_path, free to break."""

    def copy(name: str) -> Path:
        root = tmp_path / name
        shutil.copytree(FIXTURES / name, root)
        return root

    return copy


@pytest.fixture(scope="session")
def read_all() -> Callable[[Any], list]:
    """``read_all(ds)``: every ``ds[i]`` in order, the warning about clipped boxes silenced."""
    from ssd_tutorial.data._common import BoxesClippedWarning

    def read(ds: Any) -> list:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BoxesClippedWarning)
            return [ds[i] for i in range(len(ds))]

    return read


OWN_CLASSES = {"bottle": "mug", "cow": "cat", "person": "teapot"}  # VOC fixture name -> own class name
OWN_COCO_NAMES = {"circle": "mug", "square": "cat", "triangle": "teapot"}  # COCO fixture name -> own class name


@pytest.fixture
def own_classes(fixture_copy: Callable[[str], Path]) -> dict[str, Path]:
    """Copies of both fixtures whose objects are named "mug", "cat", "teapot" (not all PASCAL VOC classes), as a
    labelImg / CVAT export of your own data would be: ``{"voc": root with VOCdevkit/, "coco_images": ...,
    "coco_annotations": ...}``. The shapes are the same; only the names change (OWN_CLASSES, OWN_COCO_NAMES)."""
    import json

    voc = fixture_copy("voc")
    for xml in (voc / "VOCdevkit" / "VOC2012" / "Annotations").glob("*.xml"):
        text = xml.read_text()
        for old, new in OWN_CLASSES.items():
            text = text.replace(f"<name>{old}</name>", f"<name>{new}</name>")
        xml.write_text(text)
    coco = fixture_copy("coco")
    data = json.loads((coco / "annotations.json").read_text())
    for category in data["categories"]:
        category["name"] = OWN_COCO_NAMES[category["name"]]
    (coco / "annotations.json").write_text(json.dumps(data))
    return {"voc": voc, "coco_images": coco / "images", "coco_annotations": coco / "annotations.json"}
