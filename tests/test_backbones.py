"""Tests for ssd_tutorial.backbones: source shapes, the VGG16 split, L2Norm, extras, pretrained weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ssd_tutorial.backbones import (
    L2Norm,
    ResNet50Backbone,
    TinyBackbone,
    VGG16Backbone,
    build_backbone,
    extra_layer_specs,
    pretrained_weights_path,
)
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC, TINY_SHAPES
from ssd_tutorial.model import build_ssd

CASES = {
    "ssd512_vgg16": SSD512_VOC,
    "ssd300_vgg16": SSD300_VOC,
    "ssd512_resnet50": SSD512_VOC.replace(backbone="resnet50"),
    "ssd300_resnet50": SSD300_VOC.replace(backbone="resnet50"),
    "tiny": TINY_SHAPES,
}


@pytest.fixture(scope="module")
def sources() -> dict[str, list[torch.Tensor]]:
    """One batch-1 forward per configuration (the expensive part of this file, done once)."""
    torch.manual_seed(0)
    out = {}
    with torch.no_grad():
        for name, cfg in CASES.items():
            backbone = build_backbone(cfg).eval()
            out[name] = backbone(torch.rand(1, 3, cfg.image_size, cfg.image_size))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_source_shapes_and_channels(sources, name):
    cfg = CASES[name]
    got = [tuple(f.shape) for f in sources[name]]
    assert got == [(1, ch, fm, fm) for ch, fm in zip(cfg.in_channels, cfg.feature_map_sizes)]
    assert all(torch.isfinite(f).all() for f in sources[name])


def test_build_backbone_picks_the_class():
    assert isinstance(build_backbone(SSD300_VOC), VGG16Backbone)
    assert isinstance(build_backbone(SSD300_VOC.replace(backbone="resnet50")), ResNet50Backbone)
    assert isinstance(build_backbone(TINY_SHAPES), TinyBackbone)


def test_vgg16_split_follows_the_paper():
    backbone = VGG16Backbone(SSD300_VOC)
    pools = [m for m in backbone.conv4_3 if isinstance(m, nn.MaxPool2d)]
    assert [p.ceil_mode for p in pools] == [False, False, True]  # pool3 in ceil mode: 75 -> 38
    convs = [m for m in backbone.conv4_3 if isinstance(m, nn.Conv2d)]
    assert len(convs) == 10 and convs[-1].out_channels == 512  # conv1_1 … conv4_3
    stage2 = list(backbone.conv7)
    pool4, pool5 = [m for m in stage2 if isinstance(m, nn.MaxPool2d)]
    assert (pool4.kernel_size, pool4.stride) == (2, 2)
    assert (pool5.kernel_size, pool5.stride, pool5.padding) == (3, 1, 1)
    conv5, conv6, conv7 = (lambda c: (c[:3], c[3], c[4]))([m for m in stage2 if isinstance(m, nn.Conv2d)])
    assert all((c.in_channels, c.out_channels, c.kernel_size) == (512, 512, (3, 3)) for c in conv5)
    assert (conv6.out_channels, conv6.kernel_size, conv6.dilation, conv6.padding) == (1024, (3, 3), (6, 6), (6, 6))
    assert (conv7.out_channels, conv7.kernel_size) == (1024, (1, 1))


def test_vgg16_conv5_layers_are_used():
    """The article's code defines conv5_1 … conv5_3 but skips them; ours must run them."""
    backbone = VGG16Backbone(SSD300_VOC).eval()
    conv5 = [m for m in backbone.conv7 if isinstance(m, nn.Conv2d)][:3]
    calls = []
    for k, conv in enumerate(conv5):
        conv.register_forward_hook(lambda module, inputs, output, k=k: calls.append(k))
    with torch.no_grad():
        backbone(torch.rand(1, 3, 300, 300))
    assert calls == [0, 1, 2]


def test_l2norm_init_20_and_learnable():
    backbone = VGG16Backbone(SSD300_VOC)
    l2 = backbone.l2norm
    assert isinstance(l2, L2Norm)
    assert torch.equal(l2.weight.detach(), torch.full((512,), 20.0))
    assert l2.weight.requires_grad
    assert any(p is l2.weight for p in backbone.parameters())


def test_l2norm_values_and_gradient():
    l2 = L2Norm(2, scale=20.0)
    x = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1)  # norm 5 -> (0.6, 0.8) * 20
    out = l2(x)
    assert torch.allclose(out.view(2), torch.tensor([12.0, 16.0]))
    out.sum().backward()
    assert torch.allclose(l2.weight.grad, torch.tensor([0.6, 0.8]))
    assert torch.equal(l2(torch.zeros(1, 2, 3, 3)), torch.zeros(1, 2, 3, 3))  # no NaN on zero features


def test_resnet50_source_1_is_l2_normalized_as_in_the_article():
    """The article's code puts L2Norm(512, scale 20) on the first source of ResNet-50 too; layer3 reads the
    unnormalized layer2 output."""
    torch.manual_seed(0)
    backbone = ResNet50Backbone(SSD300_VOC.replace(backbone="resnet50")).eval()
    assert isinstance(backbone.l2norm, L2Norm)
    assert torch.equal(backbone.l2norm.weight.detach(), torch.full((512,), 20.0))
    assert any(p is backbone.l2norm.weight for p in backbone.parameters())
    x = torch.rand(1, 3, 300, 300)
    with torch.no_grad():
        sources = backbone(x)
        raw = backbone.layer2(x)  # [1, 512, 38, 38]
        by_hand = raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-10) * 20.0
        torch.testing.assert_close(sources[0], by_hand)
        norms = sources[0].norm(dim=1)  # [1, 38, 38]: every position's channel vector has norm 20
        torch.testing.assert_close(norms[raw.norm(dim=1) > 0], torch.full_like(norms[raw.norm(dim=1) > 0], 20.0))
        torch.testing.assert_close(sources[1], backbone.layer3(raw))  # not layer3 of the normalized map


def test_extra_layer_specs_presets():
    assert extra_layer_specs(SSD512_VOC) == [(3, 2, 1)] * 4 + [(4, 1, 1)]  # conv8 … conv11, conv12 4x4
    assert extra_layer_specs(SSD300_VOC) == [(3, 2, 1)] * 2 + [(3, 1, 0)] * 2  # conv8, conv9, conv10/11 pad 0
    assert extra_layer_specs(TINY_SHAPES) == [(3, 2, 1)] * 2 + [(4, 1, 1)]


def test_ssd512_layers_at_300_px():
    """SSD512's layers run on 300 px give (38, 19, 10, 5, 3, 2, 1) (used by adapt_config)."""
    with torch.device("meta"):
        backbone = build_backbone(SSD512_VOC)
        sides = [f.shape[-1] for f in backbone(torch.empty(1, 3, 300, 300))]
    assert sides == [38, 19, 10, 5, 3, 2, 1]


def test_extra_channels_follow_the_paper():
    """conv8_1 1x1 to 256 then conv8_2 to 512, conv9_1 to 128 then conv9_2 to 256, …"""
    extras = VGG16Backbone(SSD300_VOC).extras
    convs = [[(c.in_channels, c.out_channels) for c in block if isinstance(c, nn.Conv2d)] for block in extras]
    assert convs == [[(1024, 256), (256, 512)], [(512, 128), (128, 256)], [(256, 128), (128, 256)],
                     [(256, 128), (128, 256)]]  # fmt: skip


def test_extra_layer_specs_rejects_impossible_sizes():
    cfg = SSD300_VOC.replace(feature_map_sizes=(38, 19, 7, 5, 3, 1), steps=(8, 16, 300 / 7, 64, 100, 300))
    with pytest.raises(ValueError, match="19x19 map to 7x7"):
        extra_layer_specs(cfg)


def test_wrong_in_channels_for_vgg():
    cfg = SSD300_VOC.replace(in_channels=(256, 1024, 512, 256, 256, 256))
    with pytest.raises(ValueError, match=r"\(512, 1024\).*\(256, 1024\)"):
        build_backbone(cfg)


def test_tiny_model_is_small_and_trains_at_batch_1():
    model = build_ssd(TINY_SHAPES)
    assert sum(p.numel() for p in model.parameters()) <= 1_500_000
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.backbone.modules())
    backbone = model.backbone.train()
    sources = backbone(torch.rand(1, 3, 128, 128))  # BatchNorm at a 1x1 map would fail here
    assert [f.shape[-1] for f in sources] == [16, 8, 4, 2, 1]


WEIGHT_FILES = [("vgg16", "vgg16-397923af.pth"), ("resnet50", "resnet50-0676ba61.pth")]


def _fake_vgg16_file_state(reference: VGG16Backbone) -> dict[str, torch.Tensor]:
    """``reference``'s convs under torchvision's vgg16 keys (features.N.*), as in its weights file."""
    state = {f"features.{k}": v for k, v in reference.conv4_3.state_dict().items()}
    state |= {f"features.{int(k.split('.')[0]) + 23}.{k.split('.')[1]}": v
              for k, v in reference.conv7[:7].state_dict().items()}  # fmt: skip
    state["classifier.0.weight"] = torch.zeros(1)  # the classifier is ignored
    return state


@pytest.mark.parametrize(("backbone", "file_name"), WEIGHT_FILES)
def test_pretrained_path_is_torchvisions_hub_cache_file(monkeypatch, tmp_path, backbone, file_name):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert pretrained_weights_path(backbone) == tmp_path / "hub" / "checkpoints" / file_name


@pytest.mark.parametrize(("backbone", "file_name"), WEIGHT_FILES)
def test_pretrained_offline_is_one_line_naming_url_and_cache(monkeypatch, tmp_path, backbone, file_name):
    import urllib.error

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = []

    def offline(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(OSError) as info:
        build_backbone(SSD300_VOC.replace(backbone=backbone), pretrained=True)
    message = str(info.value)
    url = f"https://download.pytorch.org/models/{file_name}"
    assert calls == [url]
    assert "\n" not in message and url in message and "Name or service not known" in message
    assert str(tmp_path / "hub" / "checkpoints" / file_name) in message
    assert not (tmp_path / "hub" / "checkpoints" / file_name).exists()


def test_pretrained_vgg16_loads_from_the_hub_cache_without_downloading(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded a cached file"))
    torch.manual_seed(1)
    reference = VGG16Backbone(SSD300_VOC)  # random weights we store as if they were torchvision's file
    path = tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth"
    path.parent.mkdir(parents=True)
    torch.save(_fake_vgg16_file_state(reference), path)
    loaded = VGG16Backbone(SSD300_VOC, pretrained=True)
    assert torch.equal(loaded.conv4_3[0].weight, reference.conv4_3[0].weight)  # conv1_1
    assert torch.equal(loaded.conv7[5].weight, reference.conv7[5].weight)  # conv5_3
    assert not torch.equal(loaded.conv4_3[0].weight, VGG16Backbone(SSD300_VOC).conv4_3[0].weight)


def test_pretrained_vgg16_downloads_with_the_hash_check_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(3)
    reference = VGG16Backbone(SSD300_VOC)
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, Path(dst).parent, hash_prefix))
        torch.save(_fake_vgg16_file_state(reference), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    loaded = build_backbone(SSD300_VOC, pretrained=True)
    cache = tmp_path / "hub" / "checkpoints"
    # torchvision checks the SHA-256 prefix that the file name carries (vgg16-<397923af>.pth)
    assert calls == [("https://download.pytorch.org/models/vgg16-397923af.pth", cache, "397923af")]
    assert (cache / "vgg16-397923af.pth").is_file()
    assert torch.equal(loaded.conv4_3[2].weight, reference.conv4_3[2].weight)  # conv1_2
    build_backbone(SSD300_VOC, pretrained=True)
    assert len(calls) == 1  # the second build reads the cache


def test_tiny_has_no_pretrained_weights():
    with pytest.raises(ValueError, match="no pretrained"):
        build_backbone(TINY_SHAPES, pretrained=True)
    with pytest.raises(ValueError, match="no pretrained"):
        pretrained_weights_path("tiny")


def test_pretrained_resnet50_takes_torchvision_keys(monkeypatch):
    """A full torchvision ResNet-50 state dict (fc and layer4 included) loads into the split backbone."""
    import torchvision

    from ssd_tutorial import backbones

    torch.manual_seed(2)
    reference = torchvision.models.resnet50(weights=None)
    monkeypatch.setattr(backbones, "_load_pretrained", lambda name: reference.state_dict())
    loaded = ResNet50Backbone(SSD300_VOC.replace(backbone="resnet50"), pretrained=True)
    assert torch.equal(loaded.layer2[0].weight, reference.conv1.weight)
    assert torch.equal(loaded.layer3[-1].conv3.weight, reference.layer3[-1].conv3.weight)
