"""Tests for ssd_tutorial.model: head shapes, the anchor order of the flattened heads, train / eval
forward, input validation, adapt_config, device and dtype."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from ssd_tutorial.anchors import default_boxes, level_box_shapes
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, TINY_SHAPES
from ssd_tutorial.model import SSD, adapt_config, build_ssd


@pytest.fixture(scope="module")
def tiny() -> SSD:
    torch.manual_seed(0)
    return build_ssd(TINY_SHAPES)


def _targets() -> list[dict[str, Tensor]]:
    return [
        {"boxes": torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 120.0, 50.0]]), "labels": torch.tensor([1, 3])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},  # an image without objects
        {"boxes": torch.tensor([[0.0, 0.0, 128.0, 128.0]]), "labels": torch.tensor([2])},
    ]


@pytest.mark.parametrize("cfg", [TINY_SHAPES, SSD300_VOC, SSD512_VOC], ids=lambda c: c.name)
def test_forward_heads_shapes(cfg):
    torch.manual_seed(0)
    model = build_ssd(cfg).eval()
    B = 2 if cfg is TINY_SHAPES else 1
    with torch.no_grad():
        loc_preds, cls_logits = model.forward_heads(torch.rand(B, 3, cfg.image_size, cfg.image_size))
    assert loc_preds.shape == (B, cfg.num_anchors, 4)
    assert cls_logits.shape == (B, cfg.num_anchors, cfg.num_classes)
    assert model.anchors.shape == (cfg.num_anchors, 4)
    assert torch.isfinite(loc_preds).all() and torch.isfinite(cls_logits).all()


class _EncodeLocation(nn.Module):
    """A stand-in head: at (row i, col j) channel ``k * per_anchor + c`` holds ``(level, i, j, k, c)``."""

    def __init__(self, level: int, k: int, per_anchor: int) -> None:
        super().__init__()
        self.level, self.k, self.per_anchor = level, k, per_anchor

    def forward(self, x: Tensor) -> Tensor:
        B, _, H, W = x.shape
        i = torch.arange(H).view(1, H, 1, 1, 1).expand(B, H, W, self.k, self.per_anchor)
        j = torch.arange(W).view(1, 1, W, 1, 1).expand_as(i)
        k = torch.arange(self.k).view(1, 1, 1, self.k, 1).expand_as(i)
        c = torch.arange(self.per_anchor).view(1, 1, 1, 1, -1).expand_as(i)
        code = (((self.level * 100 + i) * 100 + j) * 100 + k) * 100 + c  # [B, H, W, k, per_anchor]
        return code.reshape(B, H, W, -1).permute(0, 3, 1, 2).to(x.dtype)  # [B, k*per_anchor, H, W]


class _ZeroSources(nn.Module):
    """A stand-in backbone that returns zero feature maps of the configured shapes."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.shapes = list(zip(cfg.in_channels, cfg.feature_map_sizes))

    def forward(self, x: Tensor) -> list[Tensor]:
        return [x.new_zeros(x.shape[0], ch, fm, fm) for ch, fm in self.shapes]


@pytest.mark.parametrize("cfg", [TINY_SHAPES, SSD300_VOC, SSD512_VOC], ids=lambda c: c.name)
def test_flattened_heads_follow_anchor_order(cfg):
    """Prediction a carries the (level, row, col, k) of anchor a, for both heads."""
    model = SSD(cfg, backbone=_ZeroSources(cfg)).double().eval()
    C = cfg.num_classes
    for level, k in enumerate(cfg.anchors_per_location):
        model.loc_heads[level] = _EncodeLocation(level, k, 4)
        model.cls_heads[level] = _EncodeLocation(level, k, C)
    with torch.no_grad():
        loc_preds, cls_logits = model.forward_heads(torch.rand(2, 3, cfg.image_size, cfg.image_size))

    def decode(code: Tensor) -> Tensor:  # -> [..., 5] (level, i, j, k, c)
        code = code.long()
        parts = []
        for _ in range(4):
            parts.append(code % 100)
            code = code // 100
        return torch.stack([code, *reversed(parts)], dim=-1)

    loc = decode(loc_preds)  # [B, A, 4, 5]
    cls = decode(cls_logits)  # [B, A, C, 5]
    assert torch.equal(loc[..., 4], torch.arange(4).expand(2, cfg.num_anchors, 4))  # coordinate c in place
    assert torch.equal(cls[..., 4], torch.arange(C).expand(2, cfg.num_anchors, C))  # class c in place
    where = loc[0, :, 0, :4]  # [A, 4] (level, i, j, k) of each prediction
    assert torch.equal(loc[..., :4], where.view(1, -1, 1, 4).expand(2, -1, 4, 4))
    assert torch.equal(cls[..., :4], where.view(1, -1, 1, 4).expand(2, -1, C, 4))

    expected = [(level, i, j, k) for level, fm in enumerate(cfg.feature_map_sizes)
                for i in range(fm) for j in range(fm) for k in range(cfg.anchors_per_location[level])]  # fmt: skip
    assert where.tolist() == [list(e) for e in expected]
    # … and that is the order of default_boxes: centre from (i, j), size from k.
    anchors = default_boxes(cfg).double()
    level, i, j, k = where.unbind(-1)
    steps = torch.tensor(cfg.steps, dtype=torch.float64)[level]
    assert torch.allclose(anchors[:, 0], (j + 0.5) * steps) and torch.allclose(anchors[:, 1], (i + 0.5) * steps)
    shapes = [torch.tensor(level_box_shapes(cfg, lv), dtype=torch.float64) for lv in range(cfg.num_levels)]
    wh = torch.stack([shapes[lv][kk] for lv, kk in zip(level.tolist(), k.tolist())])
    assert torch.allclose(anchors[:, 2:], wh)


def test_train_mode_returns_finite_scalar_losses(tiny):
    torch.manual_seed(0)
    tiny.train()
    losses = tiny(torch.rand(3, 3, 128, 128), _targets())
    assert set(losses) == {"loss_loc", "loss_cls"}
    assert all(v.ndim == 0 and torch.isfinite(v) and v > 0 for v in losses.values())
    tiny.zero_grad()
    (losses["loss_loc"] + losses["loss_cls"]).backward()
    grads = [p.grad for p in tiny.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_train_mode_all_empty_images(tiny):
    tiny.train()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    losses = tiny(torch.rand(2, 3, 128, 128), empty)
    assert losses["loss_loc"] == 0 and torch.isfinite(losses["loss_cls"]) and losses["loss_cls"] > 0


def test_train_mode_needs_targets(tiny):
    tiny.train()
    images = torch.rand(3, 3, 128, 128)
    with pytest.raises(ValueError, match="needs targets"):
        tiny(images)
    with pytest.raises(ValueError, match="expected 3, got 2"):
        tiny(images, _targets()[:2])
    with pytest.raises(TypeError, match="list of 3 dicts"):
        tiny(images, {"boxes": torch.zeros(0, 4)})
    with pytest.raises(ValueError, match=r"targets\[1\].*'boxes' and 'labels'"):
        tiny(images, [_targets()[0], {"boxes": torch.zeros(0, 4)}, _targets()[2]])


def test_eval_output_format(tiny):
    tiny.eval()
    torch.manual_seed(1)
    images = torch.rand(3, 3, 128, 128)
    with torch.no_grad():
        detections = tiny(images)
        with_targets = tiny(images, _targets())  # eval ignores targets
    assert isinstance(detections, list) and len(detections) == 3
    for det, other in zip(detections, with_targets):
        assert set(det) == {"boxes", "scores", "labels"}
        N = det["scores"].shape[0]
        assert det["boxes"].shape == (N, 4) and det["labels"].shape == (N,)
        assert det["boxes"].dtype == torch.float32 and det["scores"].dtype == torch.float32
        assert det["labels"].dtype == torch.long
        assert N <= TINY_SHAPES.max_detections
        assert ((det["boxes"] >= 0) & (det["boxes"] <= 128)).all()
        assert ((det["labels"] >= 1) & (det["labels"] < TINY_SHAPES.num_classes)).all()
        assert (det["scores"][:-1] >= det["scores"][1:]).all()
        assert all(torch.equal(det[key], other[key]) for key in det)


def test_batched_equals_per_image(tiny):
    tiny.eval()
    torch.manual_seed(2)
    images = torch.rand(3, 3, 128, 128)
    with torch.no_grad():
        loc, cls = tiny.forward_heads(images)
        singles = [tiny.forward_heads(images[b : b + 1]) for b in range(3)]
    assert torch.allclose(loc, torch.cat([s[0] for s in singles]), atol=1e-5)
    assert torch.allclose(cls, torch.cat([s[1] for s in singles]), atol=1e-5)


def test_model_normalizes_images():
    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = build_ssd(TINY_SHAPES).backbone

        def forward(self, x: Tensor) -> list[Tensor]:
            self.seen = x
            return self.inner(x)

    model = SSD(TINY_SHAPES, Recorder()).eval()
    images = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        model.forward_heads(images)
    mean = torch.tensor(TINY_SHAPES.mean).view(1, 3, 1, 1)
    std = torch.tensor(TINY_SHAPES.std).view(1, 3, 1, 1)
    assert torch.allclose(model.backbone.seen, (images - mean) / std)


def test_background_prior_sets_the_class_bias():
    model = build_ssd(TINY_SHAPES)
    for head, k in zip(model.cls_heads, TINY_SHAPES.anchors_per_location):
        probs = head.bias.detach().view(k, TINY_SHAPES.num_classes).softmax(dim=-1)  # [k, C]
        assert torch.allclose(probs[:, 0], torch.full((k,), 0.99))
    plain = SSD(TINY_SHAPES, background_prior=None)
    assert all(torch.equal(h.bias, torch.zeros_like(h.bias)) for h in plain.cls_heads)
    with pytest.raises(ValueError, match="background_prior"):
        SSD(TINY_SHAPES, background_prior=1.0)


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        ([torch.rand(3, 128, 128)], TypeError, r"images must be a torch.Tensor \[B, 3, 128, 128\], got list"),
        (torch.rand(3, 128, 128), ValueError, r"\[B, 3, 128, 128\], got \[3, 128, 128\]; add a batch dimension"),
        (torch.rand(2, 1, 128, 128), ValueError, r"\[B, 3, 128, 128\] \(3 RGB channels\), got \[2, 1, 128, 128\]"),
        (torch.rand(2, 3, 64, 64), ValueError, r"images must be \[B, 3, 128, 128\], got \[2, 3, 64, 64\]"),
        (torch.rand(0, 3, 128, 128), ValueError, r"B >= 1"),
        (torch.zeros(2, 3, 128, 128, dtype=torch.uint8), TypeError, r"float in \[0, 1\], got dtype torch.uint8.*to_dtype.*255"),  # noqa: E501
    ],
)
def test_bad_images(tiny, images, error, message):
    for mode in (tiny.train, tiny.eval):
        mode()
        with pytest.raises(error, match=message):
            tiny(images, [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2)
    with pytest.raises(error, match=message):
        tiny.forward_heads(images)


def _image_with(value: float, at: tuple[int, ...] = (1, 2, 5, 7)) -> Tensor:
    images = torch.rand(2, 3, 128, 128)
    images[at] = value
    return images


@pytest.mark.parametrize(
    ("images", "error", "message"),
    [
        (_image_with(float("nan")), ValueError, r"images must be finite, image 1 has 1 NaN and 0 inf values"),
        (_image_with(float("inf")), ValueError, r"images must be finite, image 1 has 0 NaN and 1 inf values"),
        (_image_with(-float("inf"), (0, 0, 0, 0)), ValueError, r"image 0 has 0 NaN and 1 inf"),
        (torch.rand(2, 3, 128, 128) * 255, ValueError,
         r"float in \[0, 1\], got values up to 2\d\d(\.\d+)? \(image \d\); did you forget to divide by 255\?"),
        (_image_with(1.6), ValueError, r"got values up to 1\.6 \(image 1\)"),
        ((torch.rand(2, 3, 128, 128) - 0.45) / 0.225, ValueError, r"got values down to -\d+(\.\d+)? .*normalizes"),
        (torch.zeros(2, 3, 128, 128, dtype=torch.int64), TypeError, r"got dtype torch\.int64"),
        (torch.zeros(2, 3, 128, 128, dtype=torch.bool), TypeError, r"got dtype torch\.bool"),
    ],
)
def test_bad_image_values(tiny, images, error, message):
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}] * 2
    for mode in (tiny.train, tiny.eval):
        mode()
        with pytest.raises(error, match=message):
            tiny(images, empty)
    with pytest.raises(error, match=message):
        tiny.forward_heads(images)


def test_image_values_at_the_edges_of_the_range_are_accepted(tiny):
    tiny.eval()
    images = torch.rand(2, 3, 128, 128)
    images[0, 0, 0, 0], images[1, 0, 0, 0] = 1.5, -0.5  # resize overshoot stays within the margin
    with torch.no_grad():
        assert len(tiny(images)) == 2
        assert len(tiny(torch.zeros(1, 3, 128, 128))) == 1 and len(tiny(torch.ones(1, 3, 128, 128))) == 1
        assert len(tiny(torch.rand(1, 3, 128, 128, dtype=torch.float16).float())) == 1


def _bad_target(b: int, **changes) -> list[dict[str, Tensor]]:
    targets = _targets()
    targets[b] = {**targets[b], **changes}
    return targets


@pytest.mark.parametrize(
    ("targets", "error", "message"),
    [
        (_bad_target(0, labels=torch.tensor([1.0, 3.0])), TypeError, r"targets\[0\]\['labels'\] must be an integer"),
        (_bad_target(2, labels=torch.tensor([True])), TypeError, r"targets\[2\]\['labels'\] .* got torch\.bool"),
        (_bad_target(0, labels=torch.tensor([1, 0])), ValueError,
         r"targets\[0\]\['labels'\]\[1\] must be a class id in 1 … 3, got 0 \(0 is the background"),
        (_bad_target(2, labels=torch.tensor([-1])), ValueError, r"targets\[2\]\['labels'\]\[0\] .* got -1"),
        (_bad_target(2, labels=torch.tensor([4])), ValueError, r"targets\[2\]\['labels'\]\[0\] .*1 … 3, got 4"),
        (_bad_target(2, labels=[2]), TypeError, r"targets\[2\]\['labels'\] must be a torch\.Tensor, got list"),
        (_bad_target(2, labels=torch.tensor([2, 2])), ValueError, r"targets\[2\]\['labels'\] must be \[M\] with M = 1"),
        (_bad_target(2, boxes=torch.tensor([[0, 0, 128, 128]])), TypeError, r"targets\[2\]\['boxes'\] must be a float"),
        (_bad_target(2, boxes=torch.tensor([0.0, 0.0, 128.0, 128.0])), ValueError, r"\['boxes'\] must be \[M, 4\]"),
        (_bad_target(0, boxes=torch.tensor([[10.0, 12.0, 60.0, 70.0], [70.0, 20.0, 70.0, 50.0]])), ValueError,
         r"targets\[0\]\['boxes'\]\[1\] must be finite xyxy with x2 > x1 and y2 > y1, got \[70\.0, 20\.0, 70\.0"),
        (_bad_target(2, boxes=torch.tensor([[0.0, 100.0, 128.0, 20.0]])), ValueError, r"targets\[2\]\['boxes'\]\[0\]"),
        (_bad_target(2, boxes=torch.tensor([[0.0, float("nan"), 128.0, 20.0]])), ValueError, r"\['boxes'\]\[0\]"),
        (_bad_target(2, boxes=torch.tensor([[0.0, 0.0, float("inf"), 20.0]])), ValueError, r"\['boxes'\]\[0\]"),
    ],
)
def test_bad_targets_name_the_image(tiny, targets, error, message):
    tiny.train()
    with pytest.raises(error, match=message):
        tiny(torch.rand(3, 3, 128, 128), targets)


def test_integer_labels_of_any_width_are_accepted(tiny):
    tiny.train()
    targets = [{**t, "labels": t["labels"].to(torch.int32)} for t in _targets()]
    losses = tiny(torch.rand(3, 3, 128, 128), targets)
    assert all(torch.isfinite(v) for v in losses.values())


def test_ssd512_message_names_expected_and_actual():
    model = SSD(SSD512_VOC, backbone=nn.Identity())  # no need for VGG16 to check the input
    with pytest.raises(ValueError, match=r"images must be \[B, 3, 512, 512\], got \[2, 3, 300, 300\]"):
        model.forward_heads(torch.rand(2, 3, 300, 300))


def test_backbone_with_wrong_sizes_is_reported():
    """The TINY backbone gives (12, 6, 3, 2, 1) at 96 px; a config that claims other sides is caught."""
    wrong = TINY_SHAPES.replace(image_size=96, feature_map_sizes=(12, 6, 4, 2, 1), steps=(8, 16, 24, 48, 96))
    model = SSD(wrong, backbone=build_ssd(TINY_SHAPES).backbone)
    with pytest.raises(ValueError, match=r"\(channels, side\).*adapt_config"):
        model.forward_heads(torch.rand(1, 3, 96, 96))


def test_adapt_config_ssd512_at_300():
    cfg = adapt_config(SSD512_VOC, 300)
    assert cfg.image_size == 300
    assert cfg.feature_map_sizes == (38, 19, 10, 5, 3, 2, 1)
    assert cfg.steps == pytest.approx([300 / fm for fm in (38, 19, 10, 5, 3, 2, 1)])
    assert cfg.box_sizes == pytest.approx([s * 300 / 512 for s in SSD512_VOC.box_sizes])
    assert cfg.num_classes == SSD512_VOC.num_classes and cfg.aspect_ratios == SSD512_VOC.aspect_ratios
    model = build_ssd(cfg).eval()
    with torch.no_grad():
        loc_preds, cls_logits = model.forward_heads(torch.rand(1, 3, 300, 300))
    assert loc_preds.shape == (1, cfg.num_anchors, 4) and cls_logits.shape == (1, cfg.num_anchors, 21)


@pytest.mark.parametrize("cfg", [SSD512_VOC, TINY_SHAPES, SSD512_VOC.replace(backbone="resnet50")],
                         ids=lambda c: f"{c.name}-{c.backbone}")  # fmt: skip
def test_adapt_config_to_its_own_size_is_identity(cfg):
    assert adapt_config(cfg, cfg.image_size) == cfg


def test_adapt_config_ssd300_steps_reach_the_edge():
    """The paper's SSD300 rounds its steps (8, 16, 32, 64, 100, 300); the dry run gives S / fm, so the
    last anchor centres of each level sit half a cell from the image edge."""
    cfg = adapt_config(SSD300_VOC, 300)
    assert cfg.feature_map_sizes == SSD300_VOC.feature_map_sizes
    assert cfg.steps == pytest.approx([300 / 38, 300 / 19, 30, 60, 100, 300])
    assert cfg.replace(steps=SSD300_VOC.steps) == SSD300_VOC


def test_adapt_config_tiny_at_other_sizes():
    for size, sides in ((256, (32, 16, 8, 4, 3)), (96, (12, 6, 3, 2, 1))):
        cfg = adapt_config(TINY_SHAPES, size)
        assert cfg.feature_map_sizes == sides
        model = build_ssd(cfg).eval()
        with torch.no_grad():
            detections = model(torch.rand(2, 3, size, size))
        assert len(detections) == 2
        assert all(((d["boxes"] >= 0) & (d["boxes"] <= size)).all() for d in detections)


def test_adapt_config_errors():
    with pytest.raises(ValueError, match="too small"):
        adapt_config(SSD300_VOC, 200)  # 5x5 -> 3x3 -> 1x1 runs out of pixels
    with pytest.raises(ValueError, match="positive int"):
        adapt_config(TINY_SHAPES, 0)
    with pytest.raises(ValueError, match="positive int"):
        adapt_config(TINY_SHAPES, 128.0)


def test_buffers_follow_dtype_and_are_not_saved():
    model = build_ssd(TINY_SHAPES).double().eval()
    assert model.anchors.dtype == torch.float64
    state = model.state_dict()
    assert not {"anchors", "image_mean", "image_std"} & set(state)
    with torch.no_grad():
        loc_preds, cls_logits = model.forward_heads(torch.rand(2, 3, 128, 128, dtype=torch.float64))
        detections = model(torch.rand(2, 3, 128, 128, dtype=torch.float64))
    assert loc_preds.dtype == cls_logits.dtype == torch.float64
    assert detections[0]["boxes"].dtype == torch.float64 and detections[0]["labels"].dtype == torch.long


def test_float64_images_into_a_float32_model(tiny):
    tiny.eval()
    images = torch.rand(2, 3, 128, 128, dtype=torch.float64)
    with torch.no_grad():
        loc64, _ = tiny.forward_heads(images)
        loc32, _ = tiny.forward_heads(images.float())
    assert loc64.dtype == torch.float32 and torch.equal(loc64, loc32)
    tiny.train()
    losses = tiny(images[:1], _targets()[:1])
    assert all(math.isfinite(v.item()) for v in losses.values())


def test_meta_device_follows():
    """Everything follows .to(device): on the meta device the model builds and runs without data."""
    with torch.device("meta"):
        model = build_ssd(TINY_SHAPES).eval()
        loc_preds, cls_logits = model.forward_heads(torch.empty(2, 3, 128, 128))
    assert model.anchors.device.type == "meta" and loc_preds.device.type == "meta"
    assert cls_logits.shape == (2, TINY_SHAPES.num_anchors, TINY_SHAPES.num_classes)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_with_cpu_targets():
    model = build_ssd(TINY_SHAPES).cuda()
    losses = model(torch.rand(3, 3, 128, 128, device="cuda"), _targets())
    assert all(v.device.type == "cuda" and torch.isfinite(v) for v in losses.values())
    detections = model.eval()(torch.rand(1, 3, 128, 128, device="cuda"))
    assert detections[0]["boxes"].device.type == "cuda"
