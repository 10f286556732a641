"""One training step (forward, loss, backward, SGD step) of our SSD vs ``torchvision.models.detection.SSD``.

    python -m benchmarks.bench_train_step [--quick] [--device cuda --amp bf16 --channels-last] [--batch N]

Both models get the same backbone weights (a copy of ours, wrapped to return an OrderedDict of sources), the
same default boxes (a ``DefaultBoxGenerator`` configured like ``default_boxes(cfg)``, not clipped), heads with
the same weights and the same images and targets. The targets are boxes on a grid, so that no two boxes of an
image share their best anchor: there our greedy bipartite matching and torchvision's ``SSDMatcher`` give the
same targets, and both losses (SSD paper eq. 1-3, 3:1 hard negative mining, divided by the positives) must be
equal before the step is timed. The check runs in float32; AMP, if asked, is used only for timing.
"""

from __future__ import annotations

import argparse
import copy
from collections import OrderedDict
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD as TorchvisionSSD
from torchvision.models.detection.ssd import SSDHead
from torchvision.ops import box_iou

from ssd_tutorial.anchors import default_boxes
from ssd_tutorial.boxes import cxcywh_to_xyxy
from ssd_tutorial.config import SSDConfig, get_config
from ssd_tutorial.model import SSD

from .bench_flops import count_flops
from .common import BenchOptions, Comparison, Mismatch, add_model_options, autocast, print_comparisons

__all__ = ["SourcesAsDict", "torchvision_twin", "grid_targets", "comparisons", "fit_throughput", "DEFAULT_TRAIN_BATCH"]

# CPU batch per preset (a VGG16 step at 300 px takes seconds on 2 cores); on CUDA the default is 32.
DEFAULT_TRAIN_BATCH = {"tiny_shapes": 32, "ssd300_voc": 2, "ssd512_voc": 1}


class SourcesAsDict(nn.Module):
    """Wrap a backbone that returns a list of L feature maps so that it returns ``OrderedDict("0": ..., ...)``,
    the form ``torchvision.models.detection.SSD`` expects."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.body = backbone

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict((str(k), f) for k, f in enumerate(self.body(x)))


def torchvision_twin(model: SSD) -> TorchvisionSSD:
    """A ``torchvision.models.detection.SSD`` that computes what ``model`` computes.

    Same backbone weights (deep copy), same default boxes, heads with the same weights, same normalization
    and post-processing settings. torchvision's box coder weights (10, 10, 5, 5) are our variances (0.1, 0.2).
    """
    cfg = model.cfg
    S = cfg.image_size
    if tuple(cfg.variances) != (0.1, 0.2):
        raise ValueError(f"torchvision's SSD encodes boxes with variances (0.1, 0.2), got {cfg.variances}")
    anchors = DefaultBoxGenerator([list(r) for r in cfg.aspect_ratios], scales=[s / S for s in cfg.box_sizes],
                                  steps=list(cfg.steps), clip=False)  # fmt: skip
    head = SSDHead(list(cfg.in_channels), list(cfg.anchors_per_location), cfg.num_classes)
    with torch.no_grad():
        for ours, theirs in zip([*model.loc_heads, *model.cls_heads],
                                [*head.regression_head.module_list, *head.classification_head.module_list]):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    twin = TorchvisionSSD(
        SourcesAsDict(copy.deepcopy(model.backbone)), anchors, (S, S), cfg.num_classes,
        image_mean=list(cfg.mean), image_std=list(cfg.std), head=head, score_thresh=cfg.score_threshold,
        nms_thresh=cfg.nms_threshold, detections_per_img=cfg.max_detections, iou_thresh=cfg.iou_threshold,
        topk_candidates=cfg.pre_nms_top_k, positive_fraction=1.0 / (1.0 + cfg.neg_pos_ratio),
    )  # fmt: skip
    device = model.anchors.device
    twin.to(device).train(model.training)
    # Same anchors: torchvision makes them from the feature maps at every forward; compare once here.
    with torch.no_grad():
        images = torch.zeros(1, 3, S, S, device=device)
        features = [torch.zeros(1, c, f, f, device=device) for c, f in zip(cfg.in_channels, cfg.feature_map_sizes)]
        from torchvision.models.detection.image_list import ImageList

        theirs = anchors(ImageList(images, [(S, S)]), features)[0]  # [A, 4] xyxy px
    if not torch.allclose(theirs, cxcywh_to_xyxy(model.anchors), atol=1e-3):
        raise ValueError("DefaultBoxGenerator does not reproduce default_boxes(cfg)")
    return twin


def grid_targets(cfg: SSDConfig, batch: int, seed: int, device: str | torch.device, cells: int = 3,
                 max_boxes: int = 5) -> list[dict[str, Tensor]]:  # fmt: skip
    """1 … ``max_boxes`` boxes per image, one per cell of a ``cells`` x ``cells`` grid (so boxes never overlap),
    redrawn until no two boxes of an image have the same best anchor (then both matching rules agree)."""
    g = torch.Generator().manual_seed(seed)
    S, cell = cfg.image_size, cfg.image_size / cells
    anchors_xyxy = cxcywh_to_xyxy(default_boxes(cfg))
    targets = []
    while len(targets) < batch:
        m = int(torch.randint(1, max_boxes + 1, (1,), generator=g))
        where = torch.randperm(cells * cells, generator=g)[:m]
        corner = torch.stack([where % cells, where // cells], dim=1) * cell  # [m, 2] top-left of the cell
        size = (0.35 + 0.6 * torch.rand(m, 2, generator=g)) * cell  # [m, 2] w, h
        xy = corner + torch.rand(m, 2, generator=g) * (cell - size)
        boxes = torch.cat([xy, xy + size], dim=1).clamp(0, S)  # [m, 4] xyxy px
        best = box_iou(boxes, anchors_xyxy).argmax(dim=1)  # [m]
        if best.unique().numel() == m:
            labels = torch.randint(1, cfg.num_classes, (m,), generator=g)
            targets.append({"boxes": boxes.to(device), "labels": labels.to(device)})
    return targets


def _train_step(model: nn.Module, loss_fn: Callable[[], dict[str, Tensor]], opts: BenchOptions,
                amp: bool) -> Callable[[], dict[str, Tensor]]:  # fmt: skip
    """zero_grad, forward (under autocast if ``amp``), backward (scaled for fp16) and an SGD step."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-4, momentum=0.9,
                                weight_decay=5e-4)  # fmt: skip
    use_scaler = amp and opts.amp == "fp16"
    scaler = torch.amp.GradScaler(torch.device(opts.device).type, enabled=use_scaler)

    def step() -> dict[str, Tensor]:
        optimizer.zero_grad(set_to_none=True)
        with autocast(opts, enabled=amp):
            losses = loss_fn()
        scaler.scale(sum(losses.values())).backward()
        scaler.step(optimizer)
        scaler.update()
        return {k: v.detach().float() for k, v in losses.items()}

    return step


def _same_losses(ours: dict[str, Tensor], theirs: dict[str, Tensor]) -> str:
    pairs = {"loss_loc": "bbox_regression", "loss_cls": "classification"}
    for mine, other in pairs.items():
        a, b = ours[mine].cpu(), theirs[other].cpu()
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-6):
            raise Mismatch(f"{mine} {a.item():.6f} vs torchvision {other} {b.item():.6f}")
    return f"same losses (loc {ours['loss_loc'].item():.4f}, cls {ours['loss_cls'].item():.4f})"


def _prepare(cfg: SSDConfig, batch: int, opts: BenchOptions) -> tuple[SSD, TorchvisionSSD, Tensor, list[dict]]:
    torch.manual_seed(opts.seed)
    model = SSD(cfg).to(opts.device)
    twin = torchvision_twin(model)
    images = torch.rand(batch, 3, cfg.image_size, cfg.image_size, generator=torch.Generator().manual_seed(opts.seed))
    images = images.to(opts.device)
    if opts.channels_last:
        model.to(memory_format=torch.channels_last)
        twin.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    return model, twin, images, grid_targets(cfg, batch, opts.seed, opts.device)


def train_batch(name: str, opts: BenchOptions) -> int:
    """Batch of the train-step line for preset ``name``."""
    if opts.train_batch is not None:
        return opts.train_batch
    if opts.quick:
        return 2
    return 32 if torch.device(opts.device).type == "cuda" else DEFAULT_TRAIN_BATCH.get(name, 1)


def comparisons(opts: BenchOptions) -> Iterator[Comparison]:
    """One train-step line per model of ``opts.models`` (models are built only when the line runs)."""
    for name in opts.models:
        cfg = get_config(name)
        batch = train_batch(name, opts)
        model, twin, images, targets = _prepare(cfg, batch, opts)
        model.train()
        twin.train()
        image_list = list(images)

        def ours_loss(model=model, images=images, targets=targets) -> dict[str, Tensor]:
            return model(images, targets)

        def theirs_loss(twin=twin, image_list=image_list, targets=targets) -> dict[str, Tensor]:
            return twin(image_list, targets)

        ours, theirs = _train_step(model, ours_loss, opts, True), _train_step(twin, theirs_loss, opts, True)
        checks = {}
        if opts.amp is not None:  # check in float32, time with AMP
            checks = dict(ours_check=_train_step(model, ours_loss, opts, False),
                          theirs_check=_train_step(twin, theirs_loss, opts, False))  # fmt: skip
        # Counted on one image (convolutions are linear in the batch), so big models do not run a third step.
        flops = batch * count_flops(lambda m=model, x=images[:1], t=targets[:1]: sum(m(x, t).values()).backward())
        model.zero_grad(set_to_none=True)
        backbone = "VGG16" if cfg.backbone == "vgg16" else cfg.backbone
        yield Comparison(
            what=f"train step, {name} ({backbone}, {cfg.image_size} px), B={batch}",
            ours_name="SSD + multibox_loss", theirs_name="torchvision SSD", ours=ours, theirs=theirs,
            same=_same_losses, goal=1.3 if cfg.backbone == "tiny" else 1.0, images=batch, flops=flops,
            note="targets on a grid: matching rules agree", **checks,
        )  # fmt: skip


def fit_throughput(opts: BenchOptions, iterations: int | None = None) -> dict[str, float]:
    """Images/s of ``fit`` training TINY_SHAPES on ShapesDataset with its recipe (data loading in the main process
    included), over ``iterations`` iterations of batch 32 (2 iterations of batch 4 with ``quick``)."""
    from torch.utils.data import DataLoader

    from ssd_tutorial.config import TINY_SHAPES
    from ssd_tutorial.data import ShapesDataset, collate_detection
    from ssd_tutorial.train import FIT_KEYS, TRAIN_RECIPES, fit

    recipe = TRAIN_RECIPES[TINY_SHAPES.name]
    batch = 4 if opts.quick else recipe["batch_size"]
    iterations = iterations or (2 if opts.quick else 5)
    loader = DataLoader(ShapesDataset(batch * iterations, image_size=TINY_SHAPES.image_size, seed=opts.seed),
                        batch_size=batch, shuffle=True, collate_fn=collate_detection)  # fmt: skip
    torch.manual_seed(opts.seed)
    model = SSD(TINY_SHAPES)
    kwargs = {k: recipe[k] for k in FIT_KEYS if k in recipe and k != "epochs"}
    kwargs["channels_last"] = kwargs.get("channels_last", False) or opts.channels_last
    history = fit(model, loader, epochs=1, **kwargs, device=opts.device, amp=opts.amp or False, progress=False,
                  seed=opts.seed)  # fmt: skip
    return {"images_per_s": history[0]["images_per_s"], "batch": batch, "iterations": iterations}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(parser)
    parser.add_argument("--batch", type=int)
    args = parser.parse_args(argv)
    opts = BenchOptions(quick=args.quick, device=args.device, amp=args.amp, channels_last=args.channels_last,
                        train_batch=args.batch, models=tuple(args.models.split(",")))  # fmt: skip
    print_comparisons(comparisons(opts), opts, lambda r: (
        f"ours {r.ours_s * 1e3:.1f} ms, torchvision {r.theirs_s * 1e3:.1f} ms, speed-up x{r.speedup:.2f}, "
        f"peak MB {r.ours_mb:.0f} / {r.theirs_mb:.0f}"))  # fmt: skip


if __name__ == "__main__":
    main()
