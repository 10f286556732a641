"""Experiment monitoring for ``fit``: TensorBoard and ClearML, both optional and imported only when asked for.

The article monitors training with TensorBoard and the Trains/ClearML experiment manager: loss and learning
rate per iteration, AP@0.5 per epoch and debug images of targets and detections. ``RunLoggers`` does the same;
with neither backend switched on every method is a no-op.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

__all__ = ["RunLoggers", "draw_debug_images", "format_header", "format_row"]

_DEBUG_IMAGES = 4
_DEBUG_SCORE = 0.5


def format_header() -> str:
    """The header of the one-line-per-epoch table that ``fit`` gives its ``log_fn``.

    Introduced in: 06_training.ipynb
    """
    return f"{'epoch':>5} {'loss':>8} {'loc':>8} {'cls':>8} {'lr':>9} {'img/s':>7} {'mAP@0.5':>8}"


def format_row(record: dict[str, Any]) -> str:
    """One history record of ``fit`` as a row of that table (mAP left blank on epochs without validation).

    Introduced in: 06_training.ipynb
    """
    m = f"{record['map']:>8.4f}" if "map" in record else f"{'':>8}"
    return (f"{record['epoch']:>5} {record['loss']:>8.4f} {record['loss_loc']:>8.4f} {record['loss_cls']:>8.4f} "
            f"{record['lr']:>9.2e} {record['images_per_s']:>7.1f} {m}")  # fmt: skip


class RunLoggers:
    """Fan-out of training scalars and images to TensorBoard (``out_dir/tb``) and/or a ClearML task.

    Introduced in: 06_training.ipynb
    """

    def __init__(self, out_dir: Path | None, *, tensorboard: bool = False, clearml: str | None = None,
                 hparams: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.writer = None
        self.task = None
        hparams = hparams or {}
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError("tensorboard=True needs the tensorboard package: "
                                  "pip install 'ssd_tutorial[tensorboard]'") from exc  # fmt: skip
            if out_dir is None:
                raise ValueError("tensorboard=True needs an out_dir to write to")
            self.writer = SummaryWriter(log_dir=str(Path(out_dir) / "tb"))
            self.writer.add_text("hparams", "```\n" + json.dumps(hparams, indent=1) + "\n```")
        if clearml:
            try:
                from clearml import Task
            except ImportError as exc:
                raise ImportError(f"clearml={clearml!r} needs the clearml package: "
                                  "pip install 'ssd_tutorial[clearml]'") from exc  # fmt: skip
            name = Path(out_dir).name if out_dir is not None else "fit"
            self.task = Task.init(project_name=clearml, task_name=name, reuse_last_task_id=False,
                                  auto_connect_frameworks=False, auto_connect_arg_parser=False,
                                  auto_resource_monitoring=False)  # fmt: skip
            self.task.connect({k: v for k, v in hparams.items() if k != "config"}, name="fit")
            if hparams.get("config") is not None:
                self.task.connect_configuration(hparams["config"], name="SSDConfig")

    def iteration(self, step: int, **scalars: float) -> None:
        """Per-iteration scalars (losses, lr) to TensorBoard; ClearML gets epoch means only."""
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(f"train/{key}", value, step)

    def epoch(self, record: dict[str, Any]) -> None:
        """One history record of ``fit``: epoch means, lr, throughput and, if present, ``map``."""
        epoch = int(record["epoch"])
        for key, value in record.items():
            if key == "epoch":
                continue
            group = "val" if key == "map" else "epoch"
            tag = "AP@0.5" if key == "map" else key
            if self.writer is not None:
                self.writer.add_scalar(f"{group}/{tag}", value, epoch)
            if self.task is not None:
                self.task.get_logger().report_scalar(title=tag, series=group, value=float(value), iteration=epoch)

    def debug_images(self, epoch: int, net: nn.Module, loader: DataLoader, class_names: Any = None) -> None:
        """Targets (green) and detections with score >= 0.5 (red) on the first validation images."""
        if self.writer is None and self.task is None:
            return
        grid = draw_debug_images(net, loader, class_names)
        if self.writer is not None:
            self.writer.add_images("debug/targets_green_detections_red", grid, epoch)
        if self.task is not None:
            for i, image in enumerate(grid):
                self.task.get_logger().report_image(
                    title="debug", series=f"image {i}", iteration=epoch, image=image.permute(1, 2, 0).numpy()
                )  # [H, W, 3] uint8

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.task is not None:
            self.task.close()
            self.task = None


@torch.inference_mode()
def draw_debug_images(net: nn.Module, loader: DataLoader, class_names: Any = None,
                      max_images: int = _DEBUG_IMAGES) -> torch.Tensor:  # fmt: skip
    """Tensor[K, 3, S, S] uint8: the first ``max_images`` images of ``loader`` with boxes drawn on them.

    Introduced in: 06_training.ipynb
    """
    from torchvision.utils import draw_bounding_boxes

    images, targets = next(iter(loader))
    images, targets = images[:max_images], targets[:max_images]
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    detections = net(images.to(device))
    net.train(was_training)

    def names(labels: torch.Tensor) -> list[str]:
        return [class_names[i] if class_names is not None else str(i) for i in labels.tolist()]

    drawn = []
    for image, target, det in zip(images, targets, detections):
        canvas = (image.detach().cpu().clamp(0, 1) * 255).to(torch.uint8)  # [3, S, S]
        keep = det["scores"] >= _DEBUG_SCORE
        for boxes, labels, color in ((target["boxes"], target["labels"], "lime"),
                                     (det["boxes"][keep], det["labels"][keep], "red")):  # fmt: skip
            if len(boxes):  # torchvision warns about an empty box list
                canvas = draw_bounding_boxes(canvas, boxes.cpu(), names(labels), colors=color)
        drawn.append(canvas)
    return torch.stack(drawn)  # [K, 3, S, S]
