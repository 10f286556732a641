"""fast.encode_targets (whole batch at once, what the model uses) vs torchvision's per-image target encoding.

    python -m benchmarks.bench_encode_targets [--batch 32] [--boxes 10] [--repeats 5] [--device cpu] [--threads N]

torchvision side, per image, as in ``torchvision.models.detection.SSD.compute_loss``:
``SSDMatcher(0.5)(box_iou(boxes, anchors))`` then ``BoxCoder((10, 10, 5, 5)).encode_single`` of the
foreground anchors, scattered into dense [A, 4] / [A] targets like ours. Prints the median of the
repeats for both and the ratio (> 1: encode_targets is faster), and checks that both give the same
targets on every image where the two rules agree (no two boxes share their best anchor). ``python -m
benchmarks.run`` also times the taught ``matching.encode_targets`` against torchvision on the same targets.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator

import torch
from torchvision.models.detection._utils import BoxCoder, SSDMatcher
from torchvision.ops import box_iou

from ssd_tutorial import matching
from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy
from ssd_tutorial.config import SSD300_VOC
from ssd_tutorial.fast import encode_targets

from .common import BenchOptions, Comparison, Mismatch, median_times


def make_targets(batch: int, boxes: int, image_size: int, num_classes: int, seed: int, device: str) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch):
        size = torch.rand(boxes, 2, generator=g) * 0.5 * image_size + 8
        xy = torch.rand(boxes, 2, generator=g) * (image_size - size)
        targets.append({
            "boxes": torch.cat([xy, xy + size], dim=1).to(device),
            "labels": torch.randint(1, num_classes, (boxes,), generator=g).to(device),
        })  # fmt: skip
    return targets


def torchvision_targets(targets: list[dict], anchors_xyxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    matcher, coder = SSDMatcher(0.5), BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    locs, classes = [], []
    for target in targets:
        matches = matcher(box_iou(target["boxes"], anchors_xyxy))
        foreground = torch.where(matches >= 0)[0]
        loc = anchors_xyxy.new_zeros(anchors_xyxy.shape)
        loc[foreground] = coder.encode_single(target["boxes"][matches[foreground]], anchors_xyxy[foreground])
        cls = torch.zeros(anchors_xyxy.shape[0], dtype=torch.long, device=anchors_xyxy.device)
        cls[foreground] = target["labels"][matches[foreground]]
        locs.append(loc)
        classes.append(cls)
    return torch.stack(locs), torch.stack(classes)


def median_ms(functions: dict[str, Callable[[], object]], repeats: int, device: str) -> dict[str, float]:
    """Median wall time of each function in ms; the functions take turns so load affects both alike."""
    for function in functions.values():  # warm-up
        function()
    times = median_times(list(functions.values()), repeats, device)
    return {name: t * 1e3 for name, t in zip(functions, times)}


def agreeing_images(targets: list[dict], anchors_xyxy: torch.Tensor) -> torch.Tensor:
    """Tensor[B] bool: images where the two matching rules agree (no two boxes share their best anchor)."""
    best = [box_iou(t["boxes"], anchors_xyxy).argmax(dim=1) for t in targets]  # [M] per image
    return torch.tensor([row.unique().numel() == row.numel() for row in best])


def same_targets(ours: tuple[torch.Tensor, torch.Tensor], theirs: tuple[torch.Tensor, torch.Tensor],
                 agree: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Tensor[B] bool: images whose loc and class targets are the same for both."""
    (loc, cls), (tv_loc, tv_cls) = ours, theirs
    same_cls = (cls == tv_cls).all(dim=1).cpu()
    same_loc = torch.isclose(loc, tv_loc, rtol=1e-5, atol=1e-5).all(dim=2).all(dim=1).cpu()
    return same_cls & same_loc


def comparisons(opts: BenchOptions) -> Iterator[Comparison]:
    """The target-encoding line of ``python -m benchmarks.run``: B = 32 (4 with ``quick``), 10 boxes per image."""
    cfg, batch, boxes = SSD300_VOC, (4 if opts.quick else 32), 10
    anchors = default_boxes(cfg).to(opts.device)
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    targets = make_targets(batch, boxes, cfg.image_size, cfg.num_classes, opts.seed, opts.device)
    agree = agreeing_images(targets, anchors_xyxy)

    def same(ours: tuple[torch.Tensor, torch.Tensor], theirs: tuple[torch.Tensor, torch.Tensor]) -> str:
        if not agree.any():
            raise Mismatch("no image where the matching rules agree; nothing to compare")
        same = same_targets(ours, theirs, agree)
        if not same[agree].all():
            raise Mismatch(f"targets differ on {int((~same[agree]).sum())} images where the rules agree")
        return f"same targets on the {int(agree.sum())}/{batch} images where the matching rules agree"

    what = f"target encoding, B={batch}, {cfg.name} anchors ({anchors.shape[0]}), {boxes} boxes/img"
    yield Comparison(
        what=what, ours_name="fast.encode_targets", theirs_name="SSDMatcher + BoxCoder.encode per image",
        ours=lambda: encode_targets(targets, anchors, cfg), theirs=lambda: torchvision_targets(targets, anchors_xyxy),
        same=same, goal=5.0, note="rules differ only where two boxes share their best anchor",
    )  # fmt: skip
    yield Comparison(
        what=f"taught {what}", ours_name="matching.encode_targets",
        theirs_name="SSDMatcher + BoxCoder.encode per image",
        ours=lambda: matching.encode_targets(targets, anchors, cfg),
        theirs=lambda: torchvision_targets(targets, anchors_xyxy), same=same,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # a busy shared machine gives steadier numbers with 1

    cfg = SSD300_VOC
    anchors = default_boxes(cfg).to(args.device)
    anchors_xyxy = cxcywh_to_xyxy(anchors)
    targets = make_targets(args.batch, args.boxes, cfg.image_size, cfg.num_classes, args.seed, args.device)

    loc, cls = encode_targets(targets, anchors, cfg)
    tv_loc, tv_cls = torchvision_targets(targets, anchors_xyxy)
    # The rules agree on an image when no two of its boxes share their best anchor.
    agree = agreeing_images(targets, anchors_xyxy)
    if not same_targets((loc, cls), (tv_loc, tv_cls), agree)[agree].all():
        raise SystemExit("encode_targets and torchvision differ on an image where the rules agree")

    times = median_ms(
        {"torchvision": lambda: torchvision_targets(targets, anchors_xyxy),
         "encode_targets": lambda: encode_targets(targets, anchors, cfg)},
        args.repeats, args.device,
    )  # fmt: skip
    ratio = times["torchvision"] / times["encode_targets"]
    print(f"encode_targets vs torchvision per image: B={args.batch}, {args.boxes} boxes/img, "
          f"{anchors.shape[0]} anchors ({cfg.name}), device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"  same targets on {int(agree.sum())}/{args.batch} images where the rules agree; "
          f"positives {int((cls > 0).sum())} (ours) vs {int((tv_cls > 0).sum())} (torchvision)")
    print(f"  torchvision per-image loop: {times['torchvision']:8.2f} ms (median of {args.repeats})")
    print(f"  encode_targets (batched):   {times['encode_targets']:8.2f} ms (median of {args.repeats})")
    print(f"  ratio: {ratio:.2f}x faster")
    return {**times, "ratio": ratio}


if __name__ == "__main__":
    main()
