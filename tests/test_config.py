"""Tests for ssd_tutorial.config: presets, derived counts, validation, serialization, paper_box_sizes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ssd_tutorial.config import (
    SSD300_VOC,
    SSD512_VOC,
    TINY_SHAPES,
    VOC_CLASSES,
    SSDConfig,
    get_config,
    paper_box_sizes,
)


def test_ssd512_voc_is_the_articles_constants():
    cfg = SSD512_VOC
    assert cfg.name == "ssd512_voc"
    assert cfg.image_size == 512
    assert cfg.num_classes == 21 and len(cfg.class_names) == 21
    assert cfg.class_names[0] == "__background__" and cfg.class_names[15] == "person"
    assert cfg.feature_map_sizes == (64, 32, 16, 8, 4, 2, 1)
    assert cfg.steps == (8, 16, 32, 64, 128, 256, 512)
    assert cfg.box_sizes == (35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6)
    assert cfg.aspect_ratios == ((2,), (2, 3), (2, 3), (2, 3), (2, 3), (2,), (2,))
    assert cfg.in_channels == (512, 1024, 512, 256, 256, 256, 256)
    assert cfg.backbone == "vgg16"
    assert cfg.variances == (0.1, 0.2)
    assert cfg.iou_threshold == 0.5 and cfg.neg_pos_ratio == 3 and cfg.nms_threshold == 0.45


def test_ssd512_voc_anchor_counts_hand_worked():
    cfg = SSD512_VOC
    assert cfg.num_levels == 7
    assert cfg.anchors_per_location == (4, 6, 6, 6, 6, 4, 4)
    # 64*64*4, 32*32*6, 16*16*6, 8*8*6, 4*4*6, 2*2*4, 1*1*4
    assert cfg.anchors_per_level == (16384, 6144, 1536, 384, 96, 16, 4)
    assert cfg.num_anchors == 16384 + 6144 + 1536 + 384 + 96 + 16 + 4 == 24564


def test_ssd300_voc_is_the_papers_ssd300():
    cfg = SSD300_VOC
    assert cfg.image_size == 300 and cfg.num_classes == 21
    assert cfg.feature_map_sizes == (38, 19, 10, 5, 3, 1)
    assert cfg.steps == (8, 16, 32, 64, 100, 300)
    assert cfg.box_sizes == (30.0, 60.0, 111.0, 162.0, 213.0, 264.0, 315.0)
    assert cfg.anchors_per_location == (4, 6, 6, 6, 4, 4)
    # 38*38*4, 19*19*6, 10*10*6, 5*5*6, 3*3*4, 1*1*4
    assert cfg.anchors_per_level == (5776, 2166, 600, 150, 36, 4)
    assert cfg.num_anchors == 8732


def test_tiny_shapes():
    cfg = TINY_SHAPES
    assert cfg.backbone == "tiny" and cfg.image_size == 128
    assert cfg.class_names == ("__background__", "circle", "square", "triangle") and cfg.num_classes == 4
    assert cfg.num_anchors == 16 * 16 * 4 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 4 + 1 * 4 == 1524


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SSD512_VOC.image_size = 300  # type: ignore[misc]


def test_lists_become_tuples():
    cfg = SSD300_VOC.replace(steps=[8, 16, 32, 64, 100, 300], aspect_ratios=[[2], [2, 3], [2, 3], [2, 3], [2], [2]])
    assert cfg.steps == (8, 16, 32, 64, 100, 300)
    assert cfg.aspect_ratios == SSD300_VOC.aspect_ratios
    assert cfg == SSD300_VOC and hash(cfg) == hash(SSD300_VOC)


@pytest.mark.parametrize("name", ["ssd512_voc", "ssd300_voc", "tiny_shapes"])
def test_get_config_by_name(name):
    cfg = get_config(name)
    assert cfg.name == name
    assert get_config(name.upper()) is cfg


def test_get_config_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown preset 'ssd1024'; valid names: ssd300_voc, ssd512_voc, tiny_shapes"):
        get_config("ssd1024")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": (8, 16, 32, 64, 100)}, "steps"),
        ({"aspect_ratios": ((2,),) * 5}, "aspect_ratios"),
        ({"in_channels": (512, 1024)}, "in_channels"),
        ({"box_sizes": (30.0, 60.0, 111.0, 162.0, 213.0, 264.0)}, "box_sizes"),
        ({"box_sizes": (30.0, 60.0, 60.0, 162.0, 213.0, 264.0, 315.0)}, "box_sizes"),
        ({"box_sizes": (30.0, 60.0, 50.0, 162.0, 213.0, 264.0, 315.0)}, "box_sizes"),
        ({"box_sizes": (0.0, 60.0, 111.0, 162.0, 213.0, 264.0, 315.0)}, "box_sizes"),
        ({"steps": (8, 16, 32, 64, 100, 200)}, r"steps\[5\]"),  # 1 * 200 < 300: the last map misses the image
        ({"steps": (7, 16, 32, 64, 100, 300)}, r"steps\[0\]"),  # 38 * 7 = 266 < 300
        ({"steps": (9, 16, 32, 64, 100, 300)}, r"steps\[0\]"),  # 37 * 9 = 333 >= 300: one row too many
        ({"feature_map_sizes": (38, 19, 10, 5, 3, 0)}, r"feature_map_sizes\[5\]"),
        ({"num_classes": 1, "class_names": ("__background__",)}, "num_classes"),
        ({"class_names": VOC_CLASSES[:-1]}, "class_names"),
        ({"backbone": "alexnet"}, "backbone"),
        ({"image_size": 0}, "image_size"),
        ({"aspect_ratios": ((2,), (2, 0), (2, 3), (2, 3), (2,), (2,))}, r"aspect_ratios\[1\]"),
        ({"in_channels": (512, 1024, 512, 256, 256, -1)}, r"in_channels\[5\]"),
        ({"variances": (0.1,)}, "variances"),
        ({"iou_threshold": 0.0}, "iou_threshold"),
        ({"nms_threshold": 1.5}, "nms_threshold"),
        ({"score_threshold": 1.0}, "score_threshold"),
        ({"neg_pos_ratio": -1}, "neg_pos_ratio"),
        ({"neg_pos_ratio": float("nan")}, "neg_pos_ratio"),
        ({"neg_pos_ratio": float("inf")}, "neg_pos_ratio"),
        ({"iou_threshold": float("nan")}, "iou_threshold"),
        ({"nms_threshold": float("nan")}, "nms_threshold"),
        ({"score_threshold": float("nan")}, "score_threshold"),
        ({"score_threshold": -0.1}, "score_threshold"),
        ({"mean": (0.5, float("nan"), 0.5)}, "mean"),
        ({"mean": (123.675, 116.28, 103.53)}, "mean"),  # 0-255 means on [0, 1] images
        ({"std": (0.2, 1e-45, 0.2)}, "std"),  # every normalized pixel would overflow
        ({"std": (58.395, 57.12, 57.375)}, "std"),
        ({"std": (0.2, float("inf"), 0.2)}, "std"),
        ({"variances": (0.1, float("nan"))}, "variances"),
        ({"steps": (8, 16, 32, 64, 100, float("nan"))}, r"steps\[5\]"),
        ({"box_sizes": (30.0, 60.0, 111.0, 162.0, 213.0, 264.0, float("inf"))}, "box_sizes"),
        ({"aspect_ratios": ((2,), (2, float("nan")), (2, 3), (2, 3), (2,), (2,))}, r"aspect_ratios\[1\]"),
        ({"class_names": ("__background__", *VOC_CLASSES[1:-1], "cat")}, "class_names"),
        ({"pre_nms_top_k": 0}, "pre_nms_top_k"),
        ({"mean": (0.5, 0.5)}, "mean"),
        ({"std": (0.2, 0.0, 0.2)}, "std"),
        ({"name": ""}, "name"),
    ],
)
def test_validation_error_names_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"SSDConfig\.{field}: expected"):
        SSD300_VOC.replace(**changes)


def test_non_sequence_field_is_a_type_error():
    with pytest.raises(TypeError, match=r"SSDConfig\.steps must be a sequence, got int 8"):
        SSD300_VOC.replace(steps=8)
    with pytest.raises(TypeError, match=r"SSDConfig\.class_names must be a sequence, got str"):
        SSD300_VOC.replace(class_names="abc")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"iou_threshold": "0.5"}, r"SSDConfig\.iou_threshold must be a number, got str '0\.5'"),
        ({"iou_threshold": True}, r"SSDConfig\.iou_threshold must be a number, got bool True"),
        ({"neg_pos_ratio": None}, r"SSDConfig\.neg_pos_ratio must be a number, got NoneType None"),
        ({"mean": (0.5, "0.5", 0.5)}, r"SSDConfig\.mean\[1\] must be a number, got str '0\.5'"),
        ({"std": (0.2, 0.2, False)}, r"SSDConfig\.std\[2\] must be a number, got bool False"),
        ({"variances": (0.1, "0.2")}, r"SSDConfig\.variances\[1\] must be a number"),
        ({"steps": (8, 16, 32, 64, 100, "300")}, r"SSDConfig\.steps\[5\] must be a number"),
        ({"aspect_ratios": ((2,), (2, "3"), (2, 3), (2, 3), (2,), (2,))}, r"aspect_ratios\[1\]\[1\] must be"),
        ({"max_detections": 2.5}, r"SSDConfig\.max_detections must be an int, got float 2\.5"),
        ({"pre_nms_top_k": True}, r"SSDConfig\.pre_nms_top_k must be an int, got bool True"),
        ({"image_size": 300.0}, r"SSDConfig\.image_size must be an int, got float 300\.0"),
        ({"num_classes": "21"}, r"SSDConfig\.num_classes must be an int, got str '21'"),
        ({"feature_map_sizes": (38, 19, 10, 5, 3, 1.0)}, r"SSDConfig\.feature_map_sizes\[5\] must be an int"),
        ({"in_channels": (512, 1024, 512, 256, 256, None)}, r"SSDConfig\.in_channels\[5\] must be an int"),
        ({"name": 300}, r"SSDConfig\.name must be a str, got int 300"),
        ({"backbone": None}, r"SSDConfig\.backbone must be a str, got NoneType None"),
        ({"class_names": ("__background__", *VOC_CLASSES[1:-1], 7)}, r"SSDConfig\.class_names\[20\] must be a str"),
    ],
)
def test_wrong_type_is_a_type_error_naming_the_field(changes, message):
    with pytest.raises(TypeError, match=message):
        SSD300_VOC.replace(**changes)


def test_edge_values_that_are_valid():
    assert SSD300_VOC.replace(neg_pos_ratio=0).neg_pos_ratio == 0  # no hard negatives: positives only
    assert SSD300_VOC.replace(neg_pos_ratio=2.5).neg_pos_ratio == 2.5
    assert SSD300_VOC.replace(std=(1e-3, 1.0, 0.5), mean=(0.0, 1.0, 0.5)).std == (1e-3, 1.0, 0.5)
    assert SSD300_VOC.replace(iou_threshold=1.0, nms_threshold=1.0, score_threshold=0.0).iou_threshold == 1.0
    np = pytest.importorskip("numpy")
    cfg = SSD300_VOC.replace(iou_threshold=np.float32(0.5), image_size=np.int64(300))
    assert type(cfg.iou_threshold) is float and type(cfg.image_size) is int  # plain Python: JSON-safe
    assert json.loads(json.dumps(cfg.to_dict())) == cfg.to_dict()


def test_fractional_steps_are_allowed():
    cfg = SSD300_VOC.replace(steps=tuple(300 / fm for fm in SSD300_VOC.feature_map_sizes))
    assert cfg.steps[0] == pytest.approx(7.894736842)


@pytest.mark.parametrize("cfg", [SSD512_VOC, SSD300_VOC, TINY_SHAPES])
def test_to_dict_from_dict_round_trip(cfg):
    data = cfg.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain data only
    assert isinstance(data["aspect_ratios"][0], list)
    assert SSDConfig.from_dict(data) == cfg
    assert SSDConfig.from_dict(json.loads(json.dumps(data))) == cfg


def test_from_dict_rejects_unknown_fields():
    data = SSD300_VOC.to_dict() | {"lr": 0.1}
    with pytest.raises(ValueError, match=r"unknown fields \['lr'\]"):
        SSDConfig.from_dict(data)


def test_paper_box_sizes_hand_worked():
    # SSD paper eq. 4: s_k = 0.2 + (0.9 - 0.2) / 5 * (k - 1) = 0.2, 0.34, 0.48, 0.62, 0.76, 0.9, then 1.04.
    assert paper_box_sizes(300, 6) == pytest.approx([60.0, 102.0, 144.0, 186.0, 228.0, 270.0, 312.0])
    assert paper_box_sizes(512, 2, s_min=0.1, s_max=0.5) == pytest.approx([51.2, 256.0, 460.8])


def test_paper_box_sizes_needs_two_levels():
    with pytest.raises(ValueError, match="num_levels must be >= 2"):
        paper_box_sizes(300, 1)
