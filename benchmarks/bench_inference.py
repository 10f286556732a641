"""Inference (eval-mode forward: backbone, heads, decoding and NMS) of our SSD vs torchvision's SSD.

    python -m benchmarks.bench_inference [--quick] [--batch 8] [--device cuda --amp fp16 --channels-last]

The torchvision model is :func:`benchmarks.bench_train_step.torchvision_twin` of ours (same weights, anchors
and post-processing settings), so both must return the same detections before they are timed. An untrained
model gives no detections (background prior 0.99) or the maximum everywhere (no prior), so the background bias
of the class heads is set such that about ``CANDIDATES_PER_IMAGE`` (class, anchor) scores per image pass the
score threshold, like a trained model on a busy image; the check then compares real detections. The check runs
in float32; AMP, if asked, is used only for timing.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import torch
from torch import Tensor

from ssd_tutorial.config import get_config
from ssd_tutorial.model import SSD

from .bench_train_step import torchvision_twin
from .common import BenchOptions, Comparison, add_model_options, autocast, print_comparisons, same_detections

__all__ = ["comparisons", "calibrate_background", "CANDIDATES_PER_IMAGE"]

CANDIDATES_PER_IMAGE = 100


@torch.no_grad()
def calibrate_background(model: SSD, images: Tensor, candidates_per_image: float = CANDIDATES_PER_IMAGE) -> float:
    """Set the background bias of ``model``'s class heads so that about ``candidates_per_image`` class scores per
    image of ``images`` exceed ``cfg.score_threshold``; returns the bias (bisection on the raw logits)."""
    cfg = model.cfg
    C = cfg.num_classes
    for head, k in zip(model.cls_heads, cfg.anchors_per_location):
        head.bias.view(k, C)[:, 0] = 0.0  # channel = anchor * C + class
    _, logits = model.forward_heads(images)  # [B, A, C]
    low, high = -5.0, 40.0
    for _ in range(40):
        bias = (low + high) / 2
        shifted = torch.cat([logits[..., :1] + bias, logits[..., 1:]], dim=-1)  # [B, A, C]
        count = (shifted.softmax(-1)[..., 1:] > cfg.score_threshold).sum().item() / images.shape[0]
        low, high = (bias, high) if count > candidates_per_image else (low, bias)
    for head, k in zip(model.cls_heads, cfg.anchors_per_location):
        head.bias.view(k, C)[:, 0] = bias
    return bias


def comparisons(opts: BenchOptions) -> Iterator[Comparison]:
    """One inference line per model of ``opts.models`` at batch ``opts.infer_batch`` (2 with ``quick``)."""
    batch = 2 if opts.quick else opts.infer_batch
    for name in opts.models:
        cfg = get_config(name)
        torch.manual_seed(opts.seed)
        model = SSD(cfg).to(opts.device).eval()
        images = torch.rand(batch, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(1))
        images = images.to(opts.device)
        calibrate_background(model, images[:2])
        twin = torchvision_twin(model).eval()
        if opts.channels_last:
            model.to(memory_format=torch.channels_last)
            twin.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        image_list = list(images)

        def ours(model=model, images=images, amp=True) -> list[dict]:
            with torch.inference_mode(), autocast(opts, enabled=amp):
                return model(images)

        def theirs(twin=twin, image_list=image_list, amp=True) -> list[dict]:
            with torch.inference_mode(), autocast(opts, enabled=amp):
                return twin(image_list)

        checks = {}
        if opts.amp is not None:
            checks = dict(ours_check=lambda ours=ours: ours(amp=False),
                          theirs_check=lambda theirs=theirs: theirs(amp=False))  # fmt: skip
        backbone = "VGG16" if cfg.backbone == "vgg16" else cfg.backbone
        yield Comparison(
            what=f"inference, {name} ({backbone}, {cfg.image_size} px), B={batch}",
            ours_name="SSD.eval()", theirs_name="torchvision SSD.eval()", ours=ours, theirs=theirs,
            same=same_detections, goal=1.0, images=batch, note=f"~{CANDIDATES_PER_IMAGE} candidates/image", **checks,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args(argv)
    opts = BenchOptions(quick=args.quick, device=args.device, amp=args.amp, channels_last=args.channels_last,
                        infer_batch=args.batch, models=tuple(args.models.split(",")))  # fmt: skip
    print_comparisons(comparisons(opts), opts, lambda r: (
        f"ours {r.ours_s * 1e3:.1f} ms, torchvision {r.theirs_s * 1e3:.1f} ms, x{r.speedup:.2f}, "
        f"{r.images / r.ours_s:.1f} vs {r.images / r.theirs_s:.1f} images/s"))  # fmt: skip


if __name__ == "__main__":
    main()
