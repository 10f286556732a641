"""Tests for ssd_tutorial.data.voc on the tiny fixture in data/fixtures/voc (made by scripts/make_fixtures.py)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ssd_tutorial.config import TINY_SHAPES, VOC_CLASSES
from ssd_tutorial.data import collate_detection, eval_transforms, train_transforms, voc_dataset
from ssd_tutorial.data._common import BoxesClippedWarning

REPO = Path(__file__).resolve().parents[1]
VOC_ROOT = REPO / "data" / "fixtures" / "voc"


@pytest.fixture(scope="module")
def samples(make_fixtures):  # make_fixtures, fixture_copy, fresh_fixtures, read_all: tests/conftest.py
    return {s["id"]: s for s in make_fixtures.voc_samples()}


def test_splits_and_format(read_all):
    train, val = voc_dataset(VOC_ROOT, "train"), voc_dataset(VOC_ROOT, image_set="val")
    assert len(train) == 3 and len(val) == 1
    assert train.class_names == VOC_CLASSES and len(train.class_names) == 21
    for image, target in read_all(train) + read_all(val):
        assert type(image) is torch.Tensor and image.shape == (3, 120, 160) and image.dtype == torch.float32
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert set(target) == {"boxes", "labels", "difficult"}
        assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
        assert target["difficult"].dtype == torch.bool


def test_boxes_labels_difficult_match_the_source(samples, read_all):
    ds = voc_dataset(VOC_ROOT, "train")
    for path, (image, target) in zip(ds.images, read_all(ds)):
        s = samples[Path(path).stem]
        # VOC's 1-based inclusive pixels are converted back to the continuous boxes ShapesDataset drew
        # (one written 9 px too wide, clipped back to the image width).
        expected = torch.from_numpy(s["written_boxes"]).clamp(max=160)
        assert torch.equal(target["boxes"], expected)
        assert target["labels"].tolist() == s["voc_labels"].tolist()
        assert [VOC_CLASSES[k] for k in target["labels"]] == [VOC_CLASSES[int(k)] for k in s["labels"] * 5]
        assert target["difficult"].tolist() == s["difficult"].tolist()
        # The right image, the right way round: far closer to its source than to any other (JPEG is lossy).
        errors = {k: (image - torch.from_numpy(o["pixels"]).permute(2, 0, 1) / 255).abs().mean() for k, o in
                  samples.items()}  # fmt: skip
        own = errors.pop(s["id"])
        assert own < 0.5 * min(errors.values())


def test_fixture_has_a_difficult_box(samples, read_all):
    ds = voc_dataset(VOC_ROOT, "train")
    difficult = torch.cat([t["difficult"] for _, t in read_all(ds)])
    assert difficult.sum() == 1
    no_difficult = voc_dataset(VOC_ROOT, "train", keep_difficult=False)
    assert sum(len(t["labels"]) for _, t in read_all(no_difficult)) == len(difficult) - 1
    assert not any(t["difficult"].any() for _, t in read_all(no_difficult))


def test_box_outside_the_image_is_clipped_with_a_warning():
    ds = voc_dataset(VOC_ROOT, "train")
    with pytest.warns(BoxesClippedWarning, match=r"2012_000003\.xml: 1 box\(es\) outside the 160x120 image"):
        _, target = ds[2]
    assert target["boxes"][:, 2].max() == 160  # written as xmax = 169


def test_transforms_are_applied():
    ds = voc_dataset(VOC_ROOT, "val", transforms=eval_transforms(TINY_SHAPES))
    raw = voc_dataset(VOC_ROOT, "val")
    image, target = ds[0]
    assert image.shape == (3, 128, 128)
    assert torch.allclose(target["boxes"], raw[0][1]["boxes"] * torch.tensor([0.8, 128 / 120, 0.8, 128 / 120]))
    torch.manual_seed(0)
    train = voc_dataset(VOC_ROOT, "train", transforms=train_transforms(TINY_SHAPES))
    loader = DataLoader(train, batch_size=3, collate_fn=collate_detection)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BoxesClippedWarning)
        images, targets = next(iter(loader))
    assert images.shape == (3, 3, 128, 128) and len(targets) == 3
    assert all(len(t["boxes"]) == len(t["labels"]) == len(t["difficult"]) for t in targets)


def test_index_errors():
    ds = voc_dataset(VOC_ROOT, "val")
    with pytest.raises(IndexError):
        ds[1]
    with pytest.raises(IndexError):
        ds[-1]


def test_missing_data_names_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VOC root folder not found.*host\.robots\.ox\.ac\.uk"):
        voc_dataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit[/\\]VOC2012"):
        voc_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="contains VOCdevkit"):
        voc_dataset(VOC_ROOT / "VOCdevkit" / "VOC2012")
    with pytest.raises(FileNotFoundError, match=r"ImageSets[/\\]Main[/\\]trainval\.txt"):
        voc_dataset(VOC_ROOT, "trainval")
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit[/\\]VOC2007"):
        voc_dataset(VOC_ROOT, "test", year="2007")


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_set"):
        voc_dataset(VOC_ROOT, "test")
    with pytest.raises(ValueError, match="year"):
        voc_dataset(VOC_ROOT, year="2020")
    with pytest.raises(TypeError, match="transforms"):
        voc_dataset(VOC_ROOT, transforms="flip")


@pytest.fixture
def voc_copy(fixture_copy):
    root = fixture_copy("voc")
    return root, root / "VOCdevkit" / "VOC2012"


def test_corrupt_or_truncated_image_names_the_file(voc_copy):
    root, voc = voc_copy
    (voc / "JPEGImages" / "2012_000001.jpg").write_bytes(b"this is not a jpeg")
    jpeg = (voc / "JPEGImages" / "2012_000002.jpg").read_bytes()
    (voc / "JPEGImages" / "2012_000002.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (voc / "JPEGImages" / "2012_000003.jpg").unlink()
    ds = voc_dataset(root)
    with pytest.raises(OSError, match=r"2012_000001\.jpg"):
        ds[0]
    with pytest.raises(OSError, match=r"2012_000002\.jpg"):
        ds[1]
    with pytest.raises(FileNotFoundError, match=r"2012_000003\.jpg"):
        ds[2]


def test_annotation_edge_cases(voc_copy):
    root, voc = voc_copy
    xml = voc / "Annotations" / "2012_000001.xml"
    text = xml.read_text()
    start, end = text.index("<object>"), text.rindex("</object>") + len("</object>")
    xml.write_text(text[:start] + text[end:])  # an image without objects
    (voc / "Annotations" / "2012_000002.xml").write_text("<annotation><object>")  # broken XML
    with pytest.raises(ValueError, match=r"could not parse .*2012_000002\.xml"):
        voc_dataset(root)  # class_names=None reads every XML of the split at once
    ds = voc_dataset(root, class_names=VOC_CLASSES)  # given names: each file is read when its item is
    _, target = ds[0]
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,) and target["difficult"].shape == (0,)
    with pytest.raises(ValueError, match=r"2012_000002\.xml"):
        ds[1]
    (voc / "Annotations" / "2012_000004.xml").unlink()
    with pytest.raises(FileNotFoundError, match=r"2012_000004\.xml"):
        voc_dataset(root, "val")[0]
    (voc / "Annotations" / "2012_000001.xml").write_text(text.replace("<name>person</name>", "<name>dragon</name>", 1))
    with pytest.raises(ValueError, match="dragon"):
        ds[0]


def test_float_coordinates(voc_copy, samples):
    root, voc = voc_copy
    xml = voc / "Annotations" / "2012_000004.xml"
    first_xmin = int(samples["2012_000004"]["boxes"][0, 0]) + 1
    xml.write_text(xml.read_text().replace(f"<xmin>{first_xmin}</xmin>", f"<xmin>{first_xmin}.5</xmin>", 1))
    _, target = voc_dataset(root, "val")[0]
    assert target["boxes"][0, 0] == samples["2012_000004"]["boxes"][0, 0] + 0.5


def test_fixtures_are_reproducible(fresh_fixtures):
    committed = VOC_ROOT / "VOCdevkit" / "VOC2012"
    fresh = fresh_fixtures / "voc" / "VOCdevkit" / "VOC2012"
    names = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    for name in names:
        if name.suffix == ".jpg":
            from PIL import Image

            a = np.asarray(Image.open(committed / name), dtype=np.int16)
            b = np.asarray(Image.open(fresh / name), dtype=np.int16)
            assert np.abs(a - b).max() <= 2, name  # JPEG encoders may differ by a rounding
        else:
            assert (committed / name).read_text() == (fresh / name).read_text(), name


def test_class_names_of_a_voc_folder_are_the_20_voc_classes():
    # The fixture only uses bottle, cow, person: all VOC classes, so labels keep their usual VOC ids.
    ds = voc_dataset(VOC_ROOT, "val")
    assert ds.class_names == VOC_CLASSES and len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "__background__"
    assert voc_dataset(VOC_ROOT, "val", class_names=list(VOC_CLASSES)).class_names == VOC_CLASSES
    assert voc_dataset(VOC_ROOT, "val", None, VOC_CLASSES).class_names == VOC_CLASSES  # 4th: class_names


def test_own_class_names_are_read_from_the_xml_files(own_classes, samples, read_all):
    from conftest import OWN_CLASSES

    ds = voc_dataset(own_classes["voc"], "train")
    assert ds.class_names == ("__background__", "cat", "mug", "teapot")  # sorted, background first
    shape_to_own = {k: ds.class_names.index(OWN_CLASSES[VOC_CLASSES[5 * k]]) for k in (1, 2, 3)}
    assert shape_to_own == {1: 2, 2: 1, 3: 3}  # circle=bottle->mug, square=cow->cat, triangle=person->teapot
    for path, (_, target) in zip(ds.images, read_all(ds)):
        s = samples[Path(path).stem]
        assert target["labels"].tolist() == [shape_to_own[int(k)] for k in s["labels"]]
        assert [ds.class_names[k] for k in target["labels"]] == [OWN_CLASSES[VOC_CLASSES[int(k)]]
                                                                  for k in s["voc_labels"]]  # fmt: skip
    # The val split has its own objects only; passing the train names keeps the labels the same.
    val = voc_dataset(own_classes["voc"], "val", class_names=ds.class_names)
    assert val.class_names == ds.class_names
    s = samples["2012_000004"]
    assert val[0][1]["labels"].tolist() == [shape_to_own[int(k)] for k in s["labels"]]
    # A config made from the dataset fits it.
    cfg = TINY_SHAPES.replace(num_classes=len(ds.class_names), class_names=ds.class_names)
    assert cfg.class_names[1:] == ("cat", "mug", "teapot")


def test_given_class_names_are_used_as_given(own_classes):
    names = ("__background__", "teapot", "mug", "cat")
    ds = voc_dataset(own_classes["voc"], "val", class_names=names)
    assert ds.class_names == names
    labels = ds[0][1]["labels"].tolist()
    assert {names[k] for k in labels} <= {"teapot", "mug", "cat"} and labels
    with pytest.raises(ValueError, match=r"2012_000004\.xml: object class '(cat|mug|teapot)' is not in class_names"):
        voc_dataset(own_classes["voc"], "val", class_names=("__background__", "dragon"))[0]
    with pytest.raises(ValueError, match=r"2012_000001\.xml: object class 'person' is the background"):
        voc_dataset(VOC_ROOT, "train", class_names=("person", "cow", "bottle"))[0]
    with pytest.raises(TypeError, match="class_names must be a sequence"):
        voc_dataset(VOC_ROOT, class_names="cat,mug")
    with pytest.raises(ValueError, match="class_names must be unique"):
        voc_dataset(VOC_ROOT, class_names=("__background__", "cat", "cat"))
    with pytest.raises(ValueError, match="at least one class"):
        voc_dataset(VOC_ROOT, class_names=("__background__",))
    with pytest.raises(TypeError, match="class_names must all be str"):
        voc_dataset(VOC_ROOT, class_names=("__background__", 1))


def _replace_in(xml: Path, old: str, new: str) -> None:
    text = xml.read_text()
    if old not in text:
        raise ValueError(f"{old!r} not in {xml}")
    xml.write_text(text.replace(old, new, 1))


def test_bad_xml_content_names_the_file(voc_copy):
    root, voc = voc_copy
    xml = voc / "Annotations" / "2012_000004.xml"
    original = xml.read_text()
    start, end = original.index("<bndbox>"), original.index("</bndbox>") + len("</bndbox>")
    xml.write_text(original[:start] + original[end:])
    with pytest.raises(ValueError, match=r"2012_000004\.xml: object 0 \('\w+'\) has no <bndbox>"):
        voc_dataset(root, "val")
    with pytest.raises(ValueError, match=r"2012_000004\.xml: object 0 .*has no <bndbox>"):
        voc_dataset(root, "val", class_names=VOC_CLASSES)[0]  # the same check when the item is read
    xmin = original[original.index("<xmin>") : original.index("</xmin>") + len("</xmin>")]
    cases = (
        ("", r"<bndbox> has no <xmin>"),
        ("<xmin>four</xmin>", r"<xmin> must be a number, got 'four'"),
        ("<xmin>nan</xmin>", r"<xmin> must be finite, got 'nan'"),
        ("<xmin>900</xmin>", r"inverted box, xmin=900"),
    )
    for bad, message in cases:
        xml.write_text(original.replace(xmin, bad, 1))
        with pytest.raises(ValueError, match=r"2012_000004\.xml: object 0 .*" + message):
            voc_dataset(root, "val")
    xml.write_text(original.replace("<difficult>0</difficult>", "<difficult>maybe</difficult>", 1))
    with pytest.raises(ValueError, match=r"2012_000004\.xml: object 0 .*<difficult> must be 0 or 1, got 'maybe'"):
        voc_dataset(root, "val")
    name = original[original.index("<name>") : original.index("</name>") + len("</name>")]
    xml.write_text(original.replace(name, "<name> </name>", 1))
    with pytest.raises(ValueError, match=r"2012_000004\.xml: object 0 has no <name>"):
        voc_dataset(root, "val")


def test_empty_or_missing_split(voc_copy):
    root, voc = voc_copy
    (voc / "ImageSets" / "Main" / "val.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match=r"split 'val' of .* lists no images .*val\.txt is empty"):
        voc_dataset(root, "val")
    (voc / "ImageSets" / "Main" / "val.txt").write_text("\n2012_000004\n\n")  # blank lines are skipped
    assert len(voc_dataset(root, "val")) == 1
    (voc / "ImageSets" / "Main" / "train.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"ImageSets[/\\]Main[/\\]train\.txt, which does not exist"):
        voc_dataset(root, "train")


def test_missing_folder_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"download=True"):
        voc_dataset(tmp_path / "nowhere", download=False)
    with pytest.raises(FileNotFoundError, match=r"VOCdevkit[/\\]VOC2007.*download=True"):
        voc_dataset(tmp_path, "test", year="2007")


def test_download_true_asks_torchvision_first(monkeypatch, tmp_path):
    import ssd_tutorial.data.voc as voc_module

    calls = []

    def fake_voc_detection(root, year, image_set, download):  # stands in for torchvision: no network in tests
        calls.append((root, year, image_set, download))

    monkeypatch.setattr(voc_module, "VOCDetection", fake_voc_detection)
    ds = voc_dataset(VOC_ROOT, "val", download=True)
    assert calls == [(str(VOC_ROOT), "2012", "val", True)] and len(ds) == 1
    voc_dataset(VOC_ROOT, "val")
    assert len(calls) == 1  # download=False (the default) never calls it
    with pytest.raises(FileNotFoundError, match="VOC root folder not found"):
        voc_dataset(tmp_path / "nowhere", download=True)  # the fake downloaded nothing: the layout check still runs
