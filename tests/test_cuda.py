"""The CUDA path gives what the CPU path gives: matching, loss, decoding, the model, fit with AMP and channels_last.

Skipped where no CUDA device is present (CI); run on a GPU machine with ``pytest tests/test_cuda.py``.
Comparisons run with TF32 off, so CPU and GPU agree to float32 rounding.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

from ssd_tutorial.checkpoints import load_checkpoint
from ssd_tutorial.config import SSD300_VOC, TINY_SHAPES
from ssd_tutorial.data import ShapesDataset, collate_detection
from ssd_tutorial.loss import multibox_loss
from ssd_tutorial.matching import encode_targets
from ssd_tutorial.model import build_ssd
from ssd_tutorial.postprocess import decode_detections
from ssd_tutorial.train import collect_detections, fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _targets(batch: int, size: int, classes: int, seed: int = 0, max_boxes: int = 12) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for b in range(batch):
        m = b % (max_boxes + 1)  # image 0 has no boxes
        xy = torch.rand(m, 2, generator=g) * size * 0.7
        wh = 4 + torch.rand(m, 2, generator=g) * size * 0.4
        out.append({"boxes": torch.cat([xy, (xy + wh).clamp(max=size)], 1),
                    "labels": torch.randint(1, classes, (m,), generator=g)})  # fmt: skip
    return out


def _on(targets: list[dict], device: str) -> list[dict]:
    return [{k: v.to(device) for k, v in t.items()} for t in targets]


def test_encode_targets_cuda_equals_cpu():
    model = build_ssd(SSD300_VOC)
    targets = _targets(16, SSD300_VOC.image_size, SSD300_VOC.num_classes)
    loc_cpu, cls_cpu = encode_targets(targets, model.anchors, SSD300_VOC)
    loc_gpu, cls_gpu = encode_targets(_on(targets, "cuda"), model.anchors.cuda(), SSD300_VOC)
    assert loc_gpu.device.type == cls_gpu.device.type == "cuda"
    assert torch.equal(cls_gpu.cpu(), cls_cpu)
    torch.testing.assert_close(loc_gpu.cpu(), loc_cpu, rtol=1e-5, atol=1e-5)


def test_multibox_loss_cuda_equals_cpu():
    g = torch.Generator().manual_seed(1)
    B, A, C = 8, 1524, TINY_SHAPES.num_classes
    loc, logits = torch.randn(B, A, 4, generator=g), torch.randn(B, A, C, generator=g)
    loc_t = torch.randn(B, A, 4, generator=g)
    cls_t = torch.where(torch.rand(B, A, generator=g) < 0.02, torch.randint(1, C, (B, A), generator=g), 0)
    cls_t[0] = 0  # an image without positives
    cpu = multibox_loss(loc, logits, loc_t, cls_t)
    gpu = multibox_loss(loc.cuda(), logits.cuda(), loc_t.cuda(), cls_t.cuda())
    for key in cpu:
        torch.testing.assert_close(gpu[key].cpu(), cpu[key], rtol=1e-5, atol=1e-6)


def _sorted(det: dict) -> list[tuple]:
    rows = zip(det["scores"].tolist(), det["labels"].tolist(), det["boxes"].tolist())
    return sorted(rows, key=lambda r: (-r[0], r[1]))


def test_decode_detections_cuda_equals_cpu():
    cfg = SSD300_VOC
    model = build_ssd(cfg)
    g = torch.Generator().manual_seed(2)
    B, A = 4, model.anchors.shape[0]
    loc = 0.5 * torch.randn(B, A, 4, generator=g)
    logits = torch.randn(B, A, cfg.num_classes, generator=g)
    logits[..., 0] += 3.0  # a few hundred candidates per image, like a trained model
    cpu = decode_detections(loc, logits, model.anchors, cfg)
    gpu = decode_detections(loc.cuda(), logits.cuda(), model.anchors.cuda(), cfg)
    for c, d in zip(cpu, gpu):
        assert d["boxes"].device.type == "cuda" and d["labels"].dtype == torch.long
        a, b = _sorted(c), _sorted({k: v.cpu() for k, v in d.items()})
        assert len(a) == len(b) > 0
        assert [r[1] for r in a] == [r[1] for r in b]
        torch.testing.assert_close(torch.tensor([r[0] for r in b]), torch.tensor([r[0] for r in a]), rtol=1e-5, atol=0)
        torch.testing.assert_close(torch.tensor([r[2] for r in b]), torch.tensor([r[2] for r in a]), rtol=0, atol=1e-3)


@pytest.mark.parametrize("channels_last", [False, True])
def test_model_losses_and_detections_cuda_equal_cpu(channels_last):
    torch.manual_seed(0)
    model = build_ssd(TINY_SHAPES)
    images = torch.rand(4, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    targets = _targets(4, 128, TINY_SHAPES.num_classes, seed=4, max_boxes=4)
    gpu_model = build_ssd(TINY_SHAPES).cuda()
    gpu_model.load_state_dict(model.state_dict())  # before any train-mode forward updates BatchNorm statistics
    cpu_losses = model(images, targets)
    gpu_images = images.cuda()
    if channels_last:
        gpu_model = gpu_model.to(memory_format=torch.channels_last)
        gpu_images = gpu_images.contiguous(memory_format=torch.channels_last)
    gpu_losses = gpu_model(gpu_images, _on(targets, "cuda"))
    for key in cpu_losses:
        torch.testing.assert_close(gpu_losses[key].cpu(), cpu_losses[key], rtol=1e-4, atol=1e-5)
    model.eval()
    gpu_model.eval()
    with torch.no_grad():
        heads_cpu = model.forward_heads(images)
        heads_gpu = gpu_model.forward_heads(gpu_images)
    for a, b in zip(heads_cpu, heads_gpu):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("amp", ["fp16", "bf16", False])
def test_fit_on_cuda_with_amp_and_channels_last(tmp_path, amp):
    torch.manual_seed(0)
    model = build_ssd(TINY_SHAPES)
    loader = DataLoader(ShapesDataset(16, image_size=128, seed=0), batch_size=4, shuffle=True,
                        collate_fn=collate_detection)  # fmt: skip
    val = DataLoader(ShapesDataset(8, image_size=128, seed=1), batch_size=4, collate_fn=collate_detection)
    history = fit(model, loader, epochs=2, optimizer="adamw", lr=1e-3, amp=amp, channels_last=True, device="cuda",
                  val_loader=val, out_dir=tmp_path, progress=False, seed=0)  # fmt: skip
    assert next(model.parameters()).device.type == "cuda"
    assert all(math.isfinite(h["loss"]) for h in history) and 0.0 <= history[-1]["map"] <= 1.0
    # the checkpoint written on the GPU loads on a CPU, with the fp16 GradScaler state only when one was used
    fresh = build_ssd(TINY_SHAPES)
    checkpoint = load_checkpoint(tmp_path / "last.pt", fresh, map_location="cpu")
    assert (checkpoint.get("scaler") is not None) == (amp == "fp16")
    assert all(p.device.type == "cpu" for p in fresh.parameters())
    # resume on the GPU continues where it stopped
    again = fit(build_ssd(TINY_SHAPES), loader, epochs=3, optimizer="adamw", lr=1e-3, amp=amp, channels_last=True,
                device="cuda", out_dir=tmp_path, resume=tmp_path / "last.pt", progress=False, seed=0)  # fmt: skip
    assert [h["epoch"] for h in again] == [1, 2, 3]


def test_collect_detections_returns_cpu_tensors():
    model = build_ssd(TINY_SHAPES).cuda()
    loader = DataLoader(ShapesDataset(4, image_size=128, seed=5), batch_size=2, collate_fn=collate_detection)
    detections, targets = collect_detections(model, loader)
    assert len(detections) == len(targets) == 4
    assert all(v.device.type == "cpu" for d in detections for v in d.values())
