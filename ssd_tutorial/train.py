"""Training loop for SSD: optimizer and warm-up schedule, AMP, DDP, logging, checkpoints and resume.

By default the loop follows the article's recipe (SGD lr 0.005, momentum 0.9, weight decay 5e-4, linear
warm-up, StepLR every 3 epochs x0.1). The tiny CPU preset uses AdamW with a cosine schedule, which reaches
its target mAP in fewer iterations (``TRAIN_RECIPES``, benchmarks/RESULTS.md). Checkpoint I/O lives in
``checkpoints.py`` and is re-exported here.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoints import PRETRAINED_DIR, load_checkpoint, load_pretrained, save_checkpoint, unwrap_model
from .checkpoints import restore_rng_state as _restore_rng_state
from .distributed import (
    RecordingSampler,
    distributed_env,
    distributed_loader,
    model_device,
    pick_device,
    rebuild_loader,
    seed_epoch,
)
from .monitoring import RunLoggers

__all__ = [
    "fit",
    "collect_detections",
    "save_checkpoint",
    "load_checkpoint",
    "load_pretrained",
    "lr_factor",
    "resolve_amp",
    "build_optimizer",
    "params_sha256",
    "TRAIN_RECIPES",
    "FIT_KEYS",
    "PRETRAINED_DIR",
]

# Per preset: fit() keyword arguments plus the data settings the CLI uses (batch_size, num_train, num_val).
TRAIN_RECIPES: dict[str, dict[str, Any]] = {
    # The article's schedule ("Training as published"): SGD, linear warm-up, StepLR every 3 epochs x0.1, batch 4.
    "ssd512_voc": dict(epochs=10, batch_size=4, optimizer="sgd", lr=0.005, momentum=0.9, weight_decay=5e-4,
                       warmup_iters=500, schedule="step", step_size=3, gamma=0.1),
    "ssd300_voc": dict(epochs=10, batch_size=4, optimizer="sgd", lr=0.005, momentum=0.9, weight_decay=5e-4,
                       warmup_iters=500, schedule="step", step_size=3, gamma=0.1),
    # From scratch on ShapesDataset on a CPU (benchmarks/RESULTS.md): AdamW at 1e-2 with cosine decay reached
    # mAP@0.5 0.9 in fewer images than AdamW 3e-3 / 2e-2 or SGD 0.05; batch 32 and channels-last give the most
    # images/s; 3200 images seen 8 times do not overfit yet (train loss and val mAP still improve together).
    "tiny_shapes": dict(epochs=8, batch_size=32, optimizer="adamw", lr=1e-2, weight_decay=1e-4, warmup_iters=50,
                        schedule="cosine", channels_last=True, num_train=3200, num_val=200),
}  # fmt: skip
FIT_KEYS = (
    "epochs",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "warmup_iters",
    "schedule",
    "step_size",
    "gamma",
    "grad_clip",
    "channels_last",
)
SCHEDULES = ("step", "cosine", "constant")
_WARMUP_START = 0.001  # warm-up starts at lr * 0.001 and grows linearly, as in torchvision's detection references


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    *,
    epochs: int,
    optimizer: str | torch.optim.Optimizer = "sgd",
    lr: float = 0.005,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    warmup_iters: int = 500,
    schedule: str = "step",
    step_size: int = 3,
    gamma: float = 0.1,
    grad_clip: float | None = None,
    val_loader: DataLoader | None = None,
    eval_every: int = 1,
    out_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    amp: bool | str | None = None,
    channels_last: bool = False,
    device: str | torch.device | None = None,
    tensorboard: bool = False,
    clearml: str | None = None,
    progress: bool = True,
    seed: int | None = None,
    log_fn: Callable[[str], None] | None = None,
    on_epoch_end: Callable[[dict], None] | None = None,
    max_iters: int | None = None,
    record_indices: bool = False,
) -> list[dict]:
    """Train ``model`` (an :class:`~ssd_tutorial.model.SSD`) and return one dict per epoch.

    Each dict holds ``epoch`` (1-based), ``loss``, ``loss_loc``, ``loss_cls`` (epoch means over all ranks),
    ``lr`` (at the end of the epoch), ``images_per_s`` and, on epochs with validation, ``map`` (VOC all-point
    mAP@0.5). A resumed run returns the earlier epochs too.

    Args:
        model: returns ``{"loss_loc", "loss_cls"}`` from ``model(images, targets)`` in train mode.
        train_loader: yields ``(images Tensor[B, 3, S, S] in [0, 1], list of {"boxes" xyxy px, "labels"})``.
        epochs: total number of epochs (a resumed run continues up to this number).
        optimizer: ``"sgd"`` (with ``momentum``), ``"adamw"`` or a ready ``torch.optim.Optimizer``.
        lr, weight_decay: base learning rate and weight decay of a named optimizer.
        warmup_iters: iterations of linear warm-up from ``lr * 0.001`` to ``lr``.
        schedule: ``"step"`` (x ``gamma`` every ``step_size`` epochs, the article's), ``"cosine"`` (down to 0 at
            the last iteration) or ``"constant"``; stepped every iteration.
        grad_clip: max global gradient norm, or None.
        val_loader, eval_every: evaluate mAP every ``eval_every`` epochs and after the last one (rank 0).
        out_dir: gets ``last.pt`` (every epoch), ``best.pt`` (best val mAP, or lowest loss without
            validation), ``history.json`` and TensorBoard logs; only rank 0 writes.
        resume: a checkpoint written by ``fit``; training continues exactly where it stopped.
        amp: mixed precision. ``"fp16"`` (or ``True``): float16 autocast with a GradScaler, CUDA only;
            ``"bf16"``: bfloat16 autocast, no scaler needed (CUDA, or a CPU with bf16 support); ``False``:
            float32. None: ``"fp16"`` on CUDA, float32 elsewhere.
        channels_last: channels-last memory format for the model and the images.
        device: defaults to the model's device (``cuda:LOCAL_RANK`` or CPU under torchrun).
        tensorboard: losses and lr per iteration, mAP and debug images per epoch, in ``out_dir/tb``.
        clearml: a ClearML project name to report to (``pip install clearml``).
        progress: a tqdm bar (only on a terminal, only on rank 0).
        seed: at the start of epoch e the global torch / numpy / random generators are seeded from
            (seed, e, rank), so data order and augmentation are reproducible and a resumed run equals an
            uninterrupted one. Without a seed, resume restores the RNG states saved in the checkpoint instead.
        log_fn: gets one line per epoch (and a header); the library itself never prints.
        on_epoch_end: called on rank 0 after each epoch (after its checkpoint is written) with that epoch's
            dict, as returned in the history: for live plots or early stopping by raising an exception.
        max_iters: cap on iterations per epoch (quick runs, tests).
        record_indices: write the dataset indices this rank trained on, per epoch, and a hash of its final
            weights to ``out_dir/rank{r}_indices.json`` (checks DDP sharding).

    Under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK set) the process group is set up (gloo on CPU, nccl on
    CUDA), the loader gets a DistributedSampler (``set_epoch`` each epoch) and the model is wrapped in
    DistributedDataParallel; the group is destroyed at the end if ``fit`` created it.

    Introduced in: 06_training.ipynb
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if (tensorboard or record_indices) and out_dir is None:
        raise ValueError("tensorboard=True and record_indices=True need an out_dir to write to")
    if max_iters is not None and max_iters < 1:
        raise ValueError(f"max_iters must be None or >= 1, got {max_iters!r}")
    rank, world_size = distributed_env()
    distributed = world_size > 1
    device = pick_device(model, device, distributed)
    amp_dtype = resolve_amp(amp, device)
    amp = amp_dtype is not None
    created_group = distributed and not dist.is_initialized()
    if created_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    loggers = None
    try:
        is_main = rank == 0
        out_dir = Path(out_dir) if out_dir is not None else None
        net = model.to(device)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(net, optimizer, lr, momentum, weight_decay)
        if distributed:
            train_loader = distributed_loader(train_loader, rank=rank, world_size=world_size, seed=seed or 0)
        recorder = None
        if record_indices:
            recorder = RecordingSampler(train_loader.sampler)
            train_loader = rebuild_loader(train_loader, recorder)
        iters = len(train_loader) if max_iters is None else min(max_iters, len(train_loader))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(
            it, iters_per_epoch=iters, total_iters=max(1, epochs * iters), warmup_iters=warmup_iters,
            schedule=schedule, step_size=step_size, gamma=gamma))  # fmt: skip
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)  # bf16 needs no scaling
        history: list[dict] = []
        best: float | None = None
        start_epoch = 0
        if resume is not None:
            checkpoint = load_checkpoint(resume, net, map_location=device)
            if "optimizer" in checkpoint:  # a training checkpoint: continue where it stopped (else: weights only)
                optimizer.load_state_dict(checkpoint["optimizer"])
                scheduler.load_state_dict(checkpoint["scheduler"])
                if scaler.is_enabled() and checkpoint.get("scaler"):
                    scaler.load_state_dict(checkpoint["scaler"])
                start_epoch = int(checkpoint["epoch"])
                history = list(checkpoint["metrics"].get("history", []))
                best = checkpoint["metrics"].get("best")
                if seed is None:
                    _restore_rng_state(checkpoint["rng"])
        if distributed:
            device_ids = [device.index] if device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
        cfg = getattr(net, "cfg", None)
        hparams = dict(epochs=epochs, optimizer=type(optimizer).__name__, lr=lr, momentum=momentum,
                       weight_decay=weight_decay, warmup_iters=warmup_iters, schedule=schedule, step_size=step_size,
                       gamma=gamma, grad_clip=grad_clip, seed=seed, world_size=world_size,
                       amp=str(amp_dtype).removeprefix("torch.") if amp else False,
                       config=cfg.to_dict() if cfg is not None else None)  # fmt: skip
        say = (log_fn if log_fn is not None else (tqdm.write if progress else None)) if is_main else None
        if say is not None and start_epoch < epochs:
            say(f"{'epoch':>5} {'loss':>8} {'loc':>8} {'cls':>8} {'lr':>9} {'img/s':>7} {'mAP@0.5':>8}")
        indices_log: dict[str, list[int]] = {}
        loggers = RunLoggers(out_dir if is_main else None, tensorboard=tensorboard and is_main,
                             clearml=clearml if is_main else None, hparams=hparams)  # fmt: skip
        for epoch in range(start_epoch, epochs):
            if seed is not None:
                seed_epoch(seed, epoch, rank)
            if hasattr(train_loader.sampler, "set_epoch"):
                train_loader.sampler.set_epoch(epoch)
            bar = tqdm(total=iters, desc=f"epoch {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True,
                       disable=None if (progress and is_main) else True)  # fmt: skip
            start = time.perf_counter()
            sums = _train_epoch(model, net, train_loader, optimizer, scheduler, scaler, device=device,
                                amp_dtype=amp_dtype, channels_last=channels_last, grad_clip=grad_clip, iters=iters,
                                epoch=epoch, loggers=loggers, bar=bar)  # fmt: skip
            elapsed = time.perf_counter() - start
            bar.close()
            if recorder is not None:
                indices_log[str(epoch + 1)] = recorder.seen[: int(sums[3].item())]
            if distributed:
                dist.all_reduce(sums)  # sums over ranks: mean losses over all iterations, total images
            n = max(sums[2].item(), 1.0)
            record = {"epoch": epoch + 1, "loss": (sums[0] + sums[1]).item() / n, "loss_loc": sums[0].item() / n,
                      "loss_cls": sums[1].item() / n, "lr": optimizer.param_groups[0]["lr"],
                      "images_per_s": sums[3].item() / max(elapsed, 1e-9)}  # fmt: skip
            if val_loader is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
                record["map"] = _validate(net, val_loader, device, loggers, epoch + 1, is_main, distributed)
            history.append(record)
            loggers.epoch(record)
            key, sign = ("map", 1.0) if val_loader is not None else ("loss", -1.0)
            improved = key in record and (best is None or sign * record[key] > sign * best)
            best = record[key] if improved else best
            if is_main and out_dir is not None:
                state = dict(epoch=epoch + 1, cfg=cfg, metrics={"history": history, "best": best},
                             scaler=scaler if scaler.is_enabled() else None)  # fmt: skip
                save_checkpoint(out_dir / "last.pt", net, optimizer, scheduler, **state)
                if improved:
                    save_checkpoint(out_dir / "best.pt", net, optimizer, scheduler, **state)
                (out_dir / "history.json").write_text(json.dumps(history, indent=1))
            if say is not None:
                m = f"{record['map']:>8.4f}" if "map" in record else f"{'':>8}"
                say(f"{record['epoch']:>5} {record['loss']:>8.4f} {record['loss_loc']:>8.4f} "
                    f"{record['loss_cls']:>8.4f} {record['lr']:>9.2e} {record['images_per_s']:>7.1f} {m}")  # fmt: skip
            if on_epoch_end is not None and is_main:
                on_epoch_end(dict(record))
        if recorder is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"rank{rank}_indices.json").write_text(
                json.dumps(
                    {
                        "rank": rank,
                        "world_size": world_size,
                        "indices": indices_log,
                        "params_sha256": params_sha256(net),
                    }
                )
            )
        if distributed:
            dist.barrier()  # rank 0 has finished writing before any rank returns
    finally:
        if loggers is not None:
            loggers.close()
        if created_group:
            dist.destroy_process_group()
    return history


AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_amp(amp: bool | str | None, device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype ``fit`` uses for ``amp`` on ``device``, or None for float32.

    ``None`` means float16 on CUDA and float32 elsewhere; ``True`` is ``"fp16"``. float16 needs a GradScaler and
    is CUDA-only here; bfloat16 has float32's exponent range, needs no scaler and also runs on CPUs.

    Introduced in: 06_training.ipynb
    """
    device = torch.device(device)
    if amp is None:
        amp = device.type == "cuda"
    if amp is False:
        return None
    name = "fp16" if amp is True else amp
    if name not in AMP_DTYPES:
        raise ValueError(f"amp must be None, a bool, 'fp16' or 'bf16', got {amp!r}")
    if name == "fp16" and device.type != "cuda":
        raise ValueError(f"amp={amp!r} (float16 with a GradScaler) needs a CUDA device, got {device}; "
                         f"use amp='bf16' or amp=False here")  # fmt: skip
    return AMP_DTYPES[name]


def _train_epoch(model: nn.Module, net: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                 scheduler: Any, scaler: Any, *, device: torch.device, amp_dtype: torch.dtype | None,
                 channels_last: bool, grad_clip: float | None, iters: int, epoch: int, loggers: RunLoggers,
                 bar: Any) -> Tensor:  # fmt: skip
    """One pass over ``loader``; returns float64 sums [loss_loc, loss_cls, iterations, images]."""
    model.train()
    sums = torch.zeros(4, dtype=torch.float64)
    for it, (images, targets) in enumerate(loader):
        if it >= iters:
            break
        images = images.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        targets = [{k: v.to(device) if isinstance(v, Tensor) else v for k, v in t.items()} for t in targets]
        with torch.autocast(device.type, dtype=amp_dtype or torch.float16, enabled=amp_dtype is not None):
            losses = model(images, targets)
        loss = losses["loss_loc"] + losses["loss_cls"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loc, cls = losses["loss_loc"].item(), losses["loss_cls"].item()  # plain floats: no graph is kept alive
        if not math.isfinite(loc + cls):
            raise FloatingPointError(f"loss is {loc + cls} at epoch {epoch + 1}, iteration {it} (loss_loc={loc}, "
                                     f"loss_cls={cls}); lower the lr or set grad_clip")  # fmt: skip
        sums += torch.tensor([loc, cls, 1.0, float(images.shape[0])], dtype=torch.float64)
        lr = optimizer.param_groups[0]["lr"]
        loggers.iteration(epoch * iters + it, loss=loc + cls, loss_loc=loc, loss_cls=cls, lr=lr)
        bar.set_postfix(loss=f"{loc + cls:.3f}", lr=f"{lr:.2e}", refresh=False)
        bar.update()
    return sums


def _validate(net: nn.Module, loader: DataLoader, device: torch.device, loggers: RunLoggers, epoch: int,
              is_main: bool, distributed: bool) -> float:  # fmt: skip
    """All-point mAP@0.5 on rank 0, shared with the other ranks."""
    from .evaluate import mean_average_precision

    value = [float("nan")]
    if is_main:
        detections, targets = collect_detections(net, loader, device=device)
        value = [float(mean_average_precision(detections, targets, iou_threshold=0.5, method="all_points")["map"])]
        loggers.debug_images(epoch, net, loader, getattr(getattr(net, "cfg", None), "class_names", None))
    if distributed:
        dist.broadcast_object_list(value, src=0)
    return value[0]


@torch.inference_mode()
def collect_detections(
    model: nn.Module, loader: DataLoader, *, device: str | torch.device | None = None, max_batches: int | None = None
) -> tuple[list[dict], list[dict]]:
    """Run ``model`` in eval mode over ``loader``: (detections, targets), one dict per image, on the CPU.

    Detections are ``{"boxes" Tensor[N, 4] xyxy px, "scores" Tensor[N], "labels" Tensor[N]}``; the model's
    train/eval mode is restored afterwards. Feed both lists to ``evaluate.mean_average_precision``.

    Introduced in: 07_evaluation_and_inference.ipynb
    """
    net = unwrap_model(model)
    was_training = net.training
    net.eval()
    device = torch.device(device) if device is not None else model_device(net)
    detections: list[dict] = []
    targets: list[dict] = []
    for b, (images, batch_targets) in enumerate(loader):
        if max_batches is not None and b >= max_batches:
            break
        outputs = net(images.to(device))
        detections.extend({k: v.cpu() for k, v in out.items()} for out in outputs)
        targets.extend({k: v.cpu() if isinstance(v, Tensor) else v for k, v in t.items()} for t in batch_targets)
    net.train(was_training)
    return detections, targets


def params_sha256(model: nn.Module) -> str:
    """SHA-256 over all parameters (sorted by name): equal weights bit for bit ⇔ equal hashes.

    Introduced in: 06_training.ipynb
    """
    digest = hashlib.sha256()
    for name, param in sorted(unwrap_model(model).named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_optimizer(model: nn.Module, optimizer: str | torch.optim.Optimizer, lr: float, momentum: float,
                    weight_decay: float) -> torch.optim.Optimizer:  # fmt: skip
    """A named optimizer over the trainable parameters, or ``optimizer`` itself when it is one.

    Introduced in: 06_training.ipynb
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd', 'adamw' or a torch.optim.Optimizer, got {optimizer!r}")


def lr_factor(it: int, *, iters_per_epoch: int, total_iters: int, warmup_iters: int, schedule: str,
              step_size: int, gamma: float) -> float:  # fmt: skip
    """Multiplier of the base lr at iteration ``it`` (0-based): linear warm-up times the schedule.

    Introduced in: 06_training.ipynb
    """
    warm = 1.0
    if it < warmup_iters:
        warm = _WARMUP_START + (1.0 - _WARMUP_START) * it / warmup_iters
    if schedule == "step":
        return warm * gamma ** ((it // max(iters_per_epoch, 1)) // step_size)
    if schedule == "cosine":
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(it, total_iters) / total_iters))
    return warm
