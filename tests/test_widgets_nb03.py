"""Tests for ssd_tutorial.widgets.nb03: receptive fields, the source table, parameter counts, the feature-map view."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, TINY_SHAPES  # noqa: E402
from ssd_tutorial.model import SSD, build_ssd, source_feature_shapes  # noqa: E402
from ssd_tutorial.widgets import nb03  # noqa: E402


def test_receptive_field_hand_worked():
    assert nb03.receptive_field([]) == (1, 1)
    assert nb03.receptive_field([(3, 1, 1)]) == (3, 1)
    assert nb03.receptive_field([(3, 1, 1), (3, 1, 1)]) == (5, 1)
    assert nb03.receptive_field([(2, 2, 1), (3, 1, 1)]) == (2 + 2 * 2, 2)  # pool, then 3 cells 2 px apart
    assert nb03.receptive_field([(3, 1, 6)]) == (13, 1)  # dilation 6: taps at -6, 0, +6
    assert nb03.receptive_field([(3, 2, 1)], start=(92, 8)) == (92 + 2 * 8, 16)


@pytest.mark.parametrize("bad", [[(3, 1)], [(0, 1, 1)], [(3, 1, 1.5)], [(True, 1, 1)]])
def test_receptive_field_rejects_bad_layers(bad):
    with pytest.raises(ValueError, match="kernel, stride, dilation"):
        nb03.receptive_field(bad)


def _empirical_rf(net: nn.Module, size: int) -> int:
    """Width of the input region that reaches the centre output cell (positive weights, so ReLU passes all)."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.constant_(module.weight, 1.0 / module.weight[0].numel())
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    net.eval()
    x = torch.ones(1, 3, size, size, requires_grad=True)
    y = net(x)
    h, w = y.shape[-2:]
    y[0, :, h // 2, w // 2].sum().backward()
    cols = (x.grad[0].abs().sum(dim=(0, 1)) > 0).nonzero()
    return int(cols.max() - cols.min() + 1)


def test_receptive_field_matches_gradient_reach_of_a_small_stack():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2, 2),
        nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=3, dilation=3), nn.ReLU(), nn.Conv2d(4, 2, 1),
    )  # fmt: skip
    geometry = [g[1:] for g in nb03.layer_geometry(net)]
    assert geometry == [(3, 1, 1), (2, 2, 1), (3, 2, 1), (3, 1, 3), (1, 1, 1)]
    rf, jump = nb03.receptive_field(geometry)
    assert (rf, jump) == (1 + 2 + 1 * 1 + 2 * 2 + 3 * 2 * 4, 4) == (32, 4)
    assert _empirical_rf(net, 96) == rf


@pytest.mark.slow
def test_receptive_field_of_resnet50_layer2_matches_gradient_reach():
    resnet = torchvision.models.resnet50(weights=None)
    resnet.maxpool = nn.AvgPool2d(3, 2, 1)  # same geometry; the gradient of a max reaches one pixel only
    stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1, resnet.layer2)
    rf, jump = nb03.receptive_field([g[1:] for g in nb03.layer_geometry(stem)])
    assert jump == 8
    # conv1 7x7/2 -> 7; pool 3x3/2 -> 11; layer1: 3 x (3x3 at jump 4) -> 35; layer2: 4 x (3x3 at jump 4, 8, 8, 8)
    assert rf == 35 + 2 * 4 + 3 * 2 * 8 == 91
    assert _empirical_rf(stem, 160) == rf


def test_layer_geometry_walks_the_main_path_of_a_bottleneck():
    block = torchvision.models.resnet50(weights=None).layer2[0]
    names = [g[0] for g in nb03.layer_geometry(block)]
    assert names == ["conv1", "conv2", "conv3"]  # the 1x1 downsample shortcut is parallel, not after
    assert [g[1:] for g in nb03.layer_geometry(block)] == [(1, 1, 1), (3, 2, 1), (1, 1, 1)]
    with pytest.raises(TypeError, match="torch.nn.Module"):
        nb03.layer_geometry("conv")


def test_source_table_ssd512_vgg16_hand_worked():
    rows = nb03.source_table(SSD512_VOC)
    assert [r["source"] for r in rows] == ["conv4_3", "conv7"] + [f"extras[{i}]" for i in range(5)]
    assert [r["size"] for r in rows] == list(SSD512_VOC.feature_map_sizes)
    assert [r["channels"] for r in rows] == list(SSD512_VOC.in_channels)
    assert [r["step"] for r in rows] == list(SSD512_VOC.steps)
    # conv4_3 92 (well known); pool4 +8, conv5_x 3 x 32, pool5 3x3/1 +32, conv6 dilation 6 +12*16 -> 420;
    # extras: +2*16, +2*32, +2*64, +2*128, then the 4x4 conv12 +3*256.
    assert [r["receptive_field"] for r in rows] == [92, 420, 452, 516, 644, 900, 1668]
    assert [r["jump"] for r in rows] == [8, 16, 32, 64, 128, 256, 256]  # conv12 (4x4, stride 1) keeps the jump
    assert [r["box_size"] for r in rows] == list(SSD512_VOC.box_sizes[:-1])


def test_source_feature_shapes_behind_the_table_and_adapt_config():
    # model.source_feature_shapes is the one meta-device dry run that source_table and adapt_config share.
    for cfg in (SSD512_VOC, SSD300_VOC, TINY_SHAPES):
        fm = cfg.feature_map_sizes
        assert source_feature_shapes(cfg) == list(zip(cfg.in_channels, fm, fm)), cfg.name
    assert source_feature_shapes(SSD512_VOC, 300) == [(c, s, s) for c, s in zip(
        SSD512_VOC.in_channels, (38, 19, 10, 5, 3, 2, 1))]  # fmt: skip
    assert source_feature_shapes(SSD512_VOC.replace(backbone="resnet50"))[:2] == [(512, 64, 64), (1024, 32, 32)]
    with pytest.raises(ValueError, match="image_size 16 is too small for the vgg16 backbone"):
        source_feature_shapes(SSD512_VOC, 16)
    with pytest.raises(ValueError, match="positive int"):
        source_feature_shapes(TINY_SHAPES, 0)
    with pytest.raises(TypeError, match="SSDConfig"):
        source_feature_shapes({"image_size": 512})


def test_source_table_other_configs_and_sizes():
    rows = nb03.source_table(SSD300_VOC)
    assert [r["size"] for r in rows] == [38, 19, 10, 5, 3, 1] == list(SSD300_VOC.feature_map_sizes)
    assert rows[4]["jump"] == 64 and rows[4]["step"] == 100  # 3x3 valid convs keep the jump; anchors use S / fm
    resnet = nb03.source_table(SSD512_VOC.replace(backbone="resnet50"))
    assert [r["source"] for r in resnet[:2]] == ["layer2", "layer3"]
    assert [r["receptive_field"] for r in resnet[:2]] == [91, 91 + 2 * 8 + 5 * 2 * 16]  # layer3: 6 blocks
    at_300 = nb03.source_table(SSD512_VOC, image_size=300)
    assert [r["size"] for r in at_300] == [38, 19, 10, 5, 3, 2, 1]
    assert at_300[0]["box_size"] == pytest.approx(35.84 * 300 / 512)
    text = nb03.format_source_table(rows)
    assert text.splitlines()[1].split()[:3] == ["0", "conv4_3", "[512,"]
    with pytest.raises(ValueError, match="too small"):
        nb03.source_table(SSD512_VOC, image_size=16)
    with pytest.raises(TypeError, match="SSDConfig"):
        nb03.source_table("ssd512_voc")


def test_parameter_counts_add_up_on_the_meta_device():
    with torch.device("meta"):
        model = SSD(SSD512_VOC)
    counts = nb03.parameter_counts(model)
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())
    k, ch, C = SSD512_VOC.anchors_per_location, SSD512_VOC.in_channels, SSD512_VOC.num_classes
    assert counts["loc_heads"] == sum(c * 9 * 4 * n + 4 * n for c, n in zip(ch, k))
    assert counts["cls_heads"] == sum(c * 9 * C * n + C * n for c, n in zip(ch, k))
    assert counts["backbone.l2norm"] == 512
    # conv6 (512 -> 1024, 3x3) and conv7 (1024 -> 1024, 1x1) plus conv5_1..3 (3 x 512 -> 512, 3x3)
    assert counts["backbone.conv7"] == (512 * 9 * 1024 + 1024) + (1024 * 1024 + 1024) + 3 * (512 * 9 * 512 + 512)
    with pytest.raises(TypeError, match="SSD"):
        nb03.parameter_counts(nn.Linear(2, 2))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_ssd(TINY_SHAPES).eval()
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, 128, 128, generator=generator)
    return model, image


def test_source_features_are_the_backbone_outputs(tiny):
    model, image = tiny
    features = nb03.source_features(model, image)
    assert [tuple(f.shape) for f in features] == [(c, s, s) for c, s in zip(TINY_SHAPES.in_channels,
                                                                            TINY_SHAPES.feature_map_sizes)]
    mean = torch.tensor(TINY_SHAPES.mean).view(1, 3, 1, 1)
    std = torch.tensor(TINY_SHAPES.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.backbone((image[None] - mean) / std)
    for got, want in zip(features, expected):
        torch.testing.assert_close(got, want[0])
    with pytest.raises(ValueError, match=r"Tensor\[3, 128, 128\]"):
        nb03.source_features(model, image[:, :64])


def test_feature_map_view_rows_and_errors(tiny):
    model, image = tiny
    features = nb03.source_features(model, image)
    fig, rows = nb03.feature_map_view(features, image, 1, num_channels=2)
    assert isinstance(fig, Figure)
    table = dict(rows)
    assert table["shape [C, H, W]"] == "[128, 8, 8]"
    assert table["step (px per cell)"] == "16"
    strongest = features[1].abs().mean(dim=(1, 2)).argsort(descending=True)[:2].tolist()
    assert table["strongest channels"] == ", ".join(map(str, strongest))
    assert float(table["mean |activation|"]) == pytest.approx(features[1].abs().mean().item(), abs=1e-4)
    image_axes = [ax for ax in fig.axes if ax.images]
    assert len(image_axes) == 4  # image, mean |activation|, 2 channels
    for ax in image_axes:
        assert ax.images[-1].get_extent() == [0, 128, 128, 0]  # maps stretched over the image, origin top-left
    for level, channels, needle in ((5, 1, "level"), (-1, 1, "level"), (0, 0, "num_channels"), (0, 9, "num_channels")):
        with pytest.raises(ValueError, match=needle):
            nb03.feature_map_view(features, image, level, num_channels=channels)


def test_feature_map_explorer_updates_and_shows_errors_inside(tiny):
    from ssd_tutorial.widgets.common import png_size

    model, image = tiny
    widget = nb03.feature_map_explorer(model, torch.stack([image, image.flip(-1)]))
    assert "ssd-feature-map-explorer" in widget._dom_classes
    area = widget.output
    assert area.image.value[:4] == b"\x89PNG" and area.image.layout.width == f"{png_size(area.image.value)[0]}px"
    assert "ssd-feature-map-table" in area.table.value and "[64, 16, 16]" in area.table.value
    assert widget.state["figure"] is not None and widget.state["error"] is None
    first = area.image.value
    widget.controls["level"].value = 3
    assert "[128, 2, 2]" in area.table.value and area.image.value != first
    widget.controls["channels"].value = 1
    assert len([ax for ax in widget.state["figure"].axes if ax.images]) == 3  # image, mean, one channel
    assert widget.children[0].children == (widget.controls["image"], widget.controls["level"],
                                           widget.controls["channels"])  # fmt: skip

    bad = nb03.feature_map_explorer(model, [image[:, :64, :64]])  # wrong size: a message, not a traceback
    assert "ssd-widget-error" in bad.output.message.value and "Tensor[3, 128, 128]" in bad.output.message.value
    assert bad.state["error"] and "ssd-feature-map-explorer" in bad._dom_classes
