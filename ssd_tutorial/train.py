"""Training loop for SSD: optimizer and warm-up schedule, AMP, DDP, logging, checkpoints and resume.

By default the loop follows the article's recipe (SGD lr 0.005, momentum 0.9, weight decay 5e-4, linear
warm-up, StepLR every 3 epochs x0.1). The tiny CPU preset uses AdamW with a cosine schedule, which reaches
its target mAP in fewer iterations (``TRAIN_RECIPES``, benchmarks/RESULTS.md). Checkpoint I/O lives in
``checkpoints.py``; argument checks, optimizer, lr schedule, AMP choice and Ctrl-C handling in
``train_support.py``; both are re-exported here.

Longer than the ~300 lines of the other modules because ``fit``'s docstring documents every argument and the
safety it promises (resume, interruption, DDP); the loop itself is ``fit`` → ``_train_one_epoch`` → ``_train_step``.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import hashlib
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

from .checkpoints import (
    PRETRAINED_DIR,
    load_checkpoint,
    load_pretrained,
    restore_rng_state,
    rng_state,
    run_lock,
    save_checkpoint,
    unwrap_model,
)
from .distributed import distributed_env, distributed_loader, model_device, pick_device, seed_epoch
from .monitoring import RunLoggers, format_header, format_row
from .train_support import (  # noqa: F401 (AMP_DTYPES, SCHEDULES: re-exported)
    AMP_DTYPES,
    SCHEDULES,
    LossWindow,
    Run,
    SafePoints,
    TrainingInterrupted,
    build_optimizer,
    check_fit_args,
    lr_factor,
    process_group,
    resolve_amp,
    weights_finite,
    write_json_atomic,
)

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
    "TrainingInterrupted",
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


def _shard_hook(loader: DataLoader) -> DataLoader:
    """The train loader as each rank draws from it. Identity; tests monkeypatch it to record the indices."""
    return loader


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
) -> list[dict]:
    """Train ``model`` (an :class:`~ssd_tutorial.model.SSD`) and return one dict per epoch.

    Each dict holds ``epoch`` (1-based), ``loss``, ``loss_loc``, ``loss_cls`` (epoch means over all ranks),
    ``lr`` (at the end of the epoch), ``images_per_s`` and, on epochs with validation, ``map`` (VOC all-point
    mAP@0.5). A resumed run returns the earlier epochs too.

    Args:
        model: returns ``{"loss_loc", "loss_cls"}`` from ``model(images, targets)`` in train mode.
        train_loader: a DataLoader of ``(images Tensor[B, 3, S, S] in [0, 1], list of {"boxes" xyxy px, "labels"})``.
        epochs: total number of epochs (a resumed run continues up to this number).
        optimizer: ``"sgd"`` (with ``momentum``), ``"adamw"`` or a ready ``torch.optim.Optimizer``.
        lr, weight_decay: base learning rate (> 0) and weight decay (>= 0) of a named optimizer.
        warmup_iters: iterations (>= 0) of linear warm-up from ``lr * 0.001`` to ``lr``.
        schedule: ``"step"`` (x ``gamma`` every ``step_size`` epochs, the article's), ``"cosine"`` (down to 0 at
            the last iteration) or ``"constant"``; stepped every iteration.
        grad_clip: max global gradient norm (> 0), or None.
        val_loader, eval_every: evaluate mAP every ``eval_every`` epochs and after the last one (rank 0).
        out_dir: gets ``last.pt`` (every epoch, and on SIGINT/SIGTERM), ``best.pt`` (best val mAP, or lowest loss
            without validation), ``history.json`` and TensorBoard logs; only rank 0 writes, and holds
            ``out_dir/train.lock`` meanwhile so that a second training cannot write there too.
        resume: a checkpoint written by ``fit``; training continues exactly where it stopped, also from the
            middle of an epoch (the batches already trained on are loaded again and skipped).
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

    Losses stay on the device and are read back every few iterations; a non-finite loss raises
    FloatingPointError naming the epoch, the iteration and the last finite loss, and the last checkpoint is
    left as it was. SIGINT / SIGTERM (in the main thread) let the current optimizer step finish, write
    ``last.pt`` at that point and raise :class:`TrainingInterrupted` (a KeyboardInterrupt).

    Under ``torchrun`` (RANK, WORLD_SIZE, LOCAL_RANK set) the process group is set up (gloo on CPU, nccl on
    CUDA), the loader gets a DistributedSampler (``set_epoch`` each epoch; all other DataLoader options kept)
    and the model is wrapped in DistributedDataParallel; the group is destroyed at the end if ``fit`` created
    it. There, resuming is bit-exact from an epoch boundary; from the middle of an epoch the other ranks'
    augmentation draws differ from an uninterrupted run.

    Introduced in: 06_training.ipynb
    """
    check_fit_args(model, train_loader, epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay,
                   warmup_iters=warmup_iters, schedule=schedule, step_size=step_size, gamma=gamma,
                   grad_clip=grad_clip, val_loader=val_loader, eval_every=eval_every, out_dir=out_dir,
                   tensorboard=tensorboard, max_iters=max_iters, seed=seed)  # fmt: skip
    rank, world_size = distributed_env()
    device = pick_device(model, device, world_size > 1)
    amp_dtype = resolve_amp(amp, device)
    is_main = rank == 0
    out = Path(out_dir) if out_dir is not None and is_main else None
    say = (log_fn if log_fn is not None else (tqdm.write if progress else None)) if is_main else None
    with process_group(world_size, device), run_lock(out, note=say), SafePoints() as safe:
        run = _setup(model, train_loader, optimizer, device=device, amp_dtype=amp_dtype, rank=rank,
                     world_size=world_size, seed=seed, channels_last=channels_last, grad_clip=grad_clip,
                     max_iters=max_iters, resume=resume, out=out,
                     schedule=dict(epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                   warmup_iters=warmup_iters, schedule=schedule, step_size=step_size,
                                   gamma=gamma))  # fmt: skip
        hparams = dict(epochs=epochs, optimizer=type(run.optimizer).__name__, lr=lr, momentum=momentum,
                       weight_decay=weight_decay, warmup_iters=warmup_iters, schedule=schedule, step_size=step_size,
                       gamma=gamma, grad_clip=grad_clip, seed=seed, world_size=world_size,
                       amp=str(amp_dtype).removeprefix("torch.") if amp_dtype else False,
                       config=run.cfg.to_dict() if run.cfg is not None else None)  # fmt: skip
        loggers = RunLoggers(out, tensorboard=tensorboard and is_main, clearml=clearml if is_main else None,
                             hparams=hparams)  # fmt: skip
        try:
            if say is not None and run.start_epoch < epochs:
                say(format_header())
            for epoch in range(run.start_epoch, epochs):
                bar = tqdm(total=run.iters, desc=f"epoch {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True,
                           disable=None if (progress and is_main) else True)  # fmt: skip
                record = _train_one_epoch(run, epoch, seed=seed, rank=rank, loggers=loggers, safe=safe, bar=bar)
                bar.close()
                if val_loader is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
                    record["map"] = _validate(run.net, val_loader, device, loggers, epoch + 1, is_main,
                                              world_size > 1)  # fmt: skip
                with safe.deferred():  # Ctrl-C waits until the epoch's checkpoints are written
                    _end_epoch(run, record, out, loggers, has_val=val_loader is not None)
                if say is not None:
                    say(format_row(record))
                if on_epoch_end is not None and is_main:
                    on_epoch_end(dict(record))
        except KeyboardInterrupt as err:
            _flush(run, loggers)  # the losses of the completed steps belong in the checkpoint's epoch sums
            saved = _save_interrupted(run, out, safe)
            raise TrainingInterrupted(getattr(err, "signum", None), run.describe_position(), saved) from None
        finally:
            loggers.close()
        if world_size > 1:
            dist.barrier()  # rank 0 has finished writing before any rank returns
    return run.history


def _setup(model: nn.Module, loader: DataLoader, optimizer: str | torch.optim.Optimizer, *, device: torch.device,
           amp_dtype: torch.dtype | None, rank: int, world_size: int, seed: int | None, channels_last: bool,
           grad_clip: float | None, max_iters: int | None, resume: Any, out: Path | None,
           schedule: dict[str, Any]) -> Run:  # fmt: skip
    """Model on its device, optimizer, per-iteration lr schedule, DDP wrapper and loader, resumed state."""
    net = model.to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = build_optimizer(net, optimizer, schedule["lr"], schedule["momentum"], schedule["weight_decay"])
    if world_size > 1:
        loader = distributed_loader(loader, rank=rank, world_size=world_size, seed=seed or 0)
    loader = _shard_hook(loader)
    iters = len(loader) if max_iters is None else min(max_iters, len(loader))
    sched_kw = {k: schedule[k] for k in ("warmup_iters", "schedule", "step_size", "gamma")}
    total = max(1, schedule["epochs"] * iters)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda it: lr_factor(it, iters_per_epoch=iters, total_iters=total, **sched_kw)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)  # bf16 needs no scaling
    wrapped = net
    if world_size > 1:
        wrapped = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    run = Run(net=net, model=wrapped, optimizer=opt, scheduler=scheduler, scaler=scaler, loader=loader, iters=iters,
              device=device, amp_dtype=amp_dtype, channels_last=channels_last, grad_clip=grad_clip,
              cfg=getattr(net, "cfg", None))  # fmt: skip
    if resume is not None:
        _resume(run, resume, seed)
        run.saved = out is not None and Path(resume).resolve() == (out / "last.pt").resolve()
    run.epoch = run.start_epoch
    return run


def _resume(run: Run, path: str | os.PathLike, seed: int | None) -> None:
    """Load a checkpoint into ``run``: weights only, or the whole training state (also from mid-epoch)."""
    checkpoint = load_checkpoint(path, run.net, map_location=run.device)
    if "optimizer" not in checkpoint:  # a weights-only checkpoint: start training from these weights
        return
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    run.scheduler.load_state_dict(checkpoint["scheduler"])
    if run.scaler.is_enabled() and checkpoint.get("scaler"):
        run.scaler.load_state_dict(checkpoint["scaler"])
    run.start_epoch = int(checkpoint["epoch"])
    run.history = list(checkpoint["metrics"].get("history", []))
    run.best = checkpoint["metrics"].get("best")
    point = (checkpoint.get("extra") or {}).get("interrupted")
    if point is not None:
        if int(point["iters_per_epoch"]) != run.iters:
            raise ValueError(f"resume: checkpoint {str(path)!r} was interrupted in epoch {int(point['epoch']) + 1} "
                             f"at iteration {int(point['iteration'])} of {int(point['iters_per_epoch'])} per epoch, "
                             f"but this run has {run.iters} iterations per epoch; resume with the same data, batch "
                             f"size and max_iters")  # fmt: skip
        run.resume_point = {**point, "rng": checkpoint["rng"]}  # the RNG states after its last completed step
    elif seed is None:
        restore_rng_state(checkpoint["rng"])


def _train_one_epoch(run: Run, epoch: int, *, seed: int | None, rank: int, loggers: RunLoggers, safe: SafePoints,
                     bar: Any) -> dict:  # fmt: skip
    """One pass over the loader (or the rest of an interrupted one); returns the epoch's history record."""
    point, run.resume_point = run.resume_point, None
    if point is not None:
        restore_rng_state(point["epoch_rng"])
    elif seed is not None:
        seed_epoch(seed, epoch, rank)
    run.begin_epoch(epoch, rng_state(), point)
    if hasattr(run.loader.sampler, "set_epoch"):
        run.loader.sampler.set_epoch(epoch)
    batches = iter(run.loader)
    for _ in range(run.done):  # resumed mid-epoch: the same batches again, not trained on, so the data order holds
        next(batches)
    if point is not None:
        restore_rng_state(point["rng"])
    bar.update(run.done)
    run.model.train()
    start, images = time.perf_counter(), 0
    for it in range(run.done, run.iters):
        batch_images, targets = next(batches)
        _train_step(run, batch_images, targets, safe)
        images += batch_images.shape[0]
        if len(run.window) == LossWindow.SIZE or it + 1 == run.iters:
            _flush(run, loggers, bar)
    return _epoch_record(run, epoch, images, time.perf_counter() - start)


def _train_step(run: Run, images: Tensor, targets: list[dict], safe: SafePoints) -> None:
    """Forward, backward and optimizer step on one batch; its losses go to ``run.window`` (still on the device)."""
    images = images.to(run.device, non_blocking=True)
    if run.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    targets = [{k: v.to(run.device) if isinstance(v, Tensor) else v for k, v in t.items()} for t in targets]
    with torch.autocast(run.device.type, dtype=run.amp_dtype or torch.float16, enabled=run.amp_dtype is not None):
        losses = run.model(images, targets)
    loss = losses["loss_loc"] + losses["loss_cls"]
    with safe.deferred():  # a signal waits until this step is complete, so last.pt is never half a step
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if run.grad_clip is not None:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.net.parameters(), run.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        pair = torch.stack([losses["loss_loc"].detach(), losses["loss_cls"].detach()]).float()  # no graph kept alive
        run.window.add(run.done, pair, run.optimizer.param_groups[0]["lr"])
        run.step_done()


def _flush(run: Run, loggers: RunLoggers, bar: Any = None) -> None:
    """Read the window's losses back to the host (the one sync per log interval), check, sum and log them."""
    window, epoch = run.window, run.epoch
    if not len(window):
        return
    values = window.read()  # [n, 2] float64 on the CPU
    for (it, lr), (loc, cls) in zip(window.steps, values.tolist()):
        if not math.isfinite(loc + cls):
            last = (f"the last finite loss was {run.last_finite[1]:.4f} at iteration {run.last_finite[0]}"
                    if run.last_finite is not None else "no finite loss before it")  # fmt: skip
            raise FloatingPointError(f"loss is {loc + cls} at epoch {epoch + 1}, iteration {it} (loss_loc={loc}, "
                                     f"loss_cls={cls}); {last} in this epoch; the last checkpoint is kept as it "
                                     f"was; lower the lr or set grad_clip")  # fmt: skip
        run.sums += torch.tensor([loc, cls, 1.0], dtype=torch.float64)  # one by one: the same sums after a resume
        run.last_finite = (it, loc + cls)
        loggers.iteration(epoch * run.iters + it, loss=loc + cls, loss_loc=loc, loss_cls=cls, lr=lr)
    if bar is not None:
        bar.set_postfix(loss=f"{run.last_finite[1]:.3f}", lr=f"{window.steps[-1][1]:.2e}", refresh=False)
        bar.update(len(window))
    window.clear()


def _epoch_record(run: Run, epoch: int, images: int, elapsed: float) -> dict:
    """Epoch means of the losses (over all ranks), the lr and the throughput of this epoch."""
    totals = torch.cat([run.sums, torch.tensor([float(images)], dtype=torch.float64)])  # loc, cls, iters, images
    if dist.is_available() and dist.is_initialized():
        totals = totals.to(run.device)
        dist.all_reduce(totals)  # sums over ranks: mean losses over all iterations, total images
        totals = totals.cpu()
    n = max(totals[2].item(), 1.0)
    return {"epoch": epoch + 1, "loss": (totals[0] + totals[1]).item() / n, "loss_loc": totals[0].item() / n,
            "loss_cls": totals[1].item() / n, "lr": run.optimizer.param_groups[0]["lr"],
            "images_per_s": totals[3].item() / max(elapsed, 1e-9)}  # fmt: skip


def _end_epoch(run: Run, record: dict, out: Path | None, loggers: RunLoggers, *, has_val: bool) -> None:
    """History, best score, last.pt / best.pt / history.json (rank 0 with an out_dir)."""
    key, sign = ("map", 1.0) if has_val else ("loss", -1.0)
    improved = key in record and (run.best is None or sign * record[key] > sign * run.best)
    if out is not None and not weights_finite(run.net):
        raise FloatingPointError(f"the weights became non-finite in epoch {record['epoch']} although the loss "
                                 f"stayed finite; {out / 'last.pt'} keeps the last good one; set grad_clip")
    run.history.append(record)
    run.best = record[key] if improved else run.best
    loggers.epoch(record)
    if out is not None:
        state = dict(epoch=record["epoch"], cfg=run.cfg, metrics={"history": run.history, "best": run.best},
                     scaler=run.scaler if run.scaler.is_enabled() else None)  # fmt: skip
        save_checkpoint(out / "last.pt", run.net, run.optimizer, run.scheduler, **state)
        if improved:
            save_checkpoint(out / "best.pt", run.net, run.optimizer, run.scheduler, **state)
        write_json_atomic(out / "history.json", run.history)
    run.end_epoch(saved=out is not None)


def _save_interrupted(run: Run | None, out: Path | None, safe: SafePoints) -> Path | None:
    """On SIGINT/SIGTERM: last.pt at the last completed iteration (None: nothing could be saved)."""
    if run is None or out is None:
        return None
    path = out / "last.pt"
    if run.at_boundary() and run.saved:
        return path  # the checkpoint of this epoch boundary is on disk already
    if not weights_finite(run.net):
        return None
    extra = {} if run.at_boundary() else {"interrupted": run.position()}
    with safe.deferred():
        save_checkpoint(path, run.net, run.optimizer, run.scheduler, epoch=run.epoch, cfg=run.cfg,
                        metrics={"history": run.history, "best": run.best}, extra=extra, rng=run.step_rng,
                        scaler=run.scaler if run.scaler.is_enabled() else None)  # fmt: skip
    return path


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
