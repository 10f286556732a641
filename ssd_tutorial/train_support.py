"""What ``fit`` is built from: argument checks, optimizer, lr schedule and AMP choice, the loop's position, safe
points for Ctrl-C and the loss window.

Kept out of ``train.py`` so that the loop there reads top to bottom. ``Run`` records where training is (epoch,
iteration, RNG states at the epoch start and after the last step), which is what a checkpoint written on SIGINT /
SIGTERM must hold for a resume to continue the same run bit for bit.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import json
import math
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .checkpoints import rng_state

__all__ = ["SCHEDULES", "AMP_DTYPES", "resolve_amp", "build_optimizer", "lr_factor", "check_fit_args",
           "process_group", "SafePoints", "TrainingInterrupted", "Run", "LossWindow", "weights_finite",
           "write_json_atomic"]  # fmt: skip

SCHEDULES = ("step", "cosine", "constant")
AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
_WARMUP_START = 0.001  # warm-up starts at lr * 0.001 and grows linearly, as in torchvision's detection references


def _int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, got {type(value).__name__} "
                        f"{value!r}")  # fmt: skip
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _number(name: str, value: Any, *, low: float, low_open: bool, high: float = math.inf, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value >= high:
        bounds = f"{'>' if low_open else '>='} {low:g}" + (f" and < {high:g}" if high != math.inf else "")
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}{hint}")


def check_fit_args(model: Any, train_loader: Any, *, epochs: Any, lr: Any, momentum: Any, weight_decay: Any,
                   warmup_iters: Any, schedule: Any, step_size: Any, gamma: Any, grad_clip: Any, val_loader: Any,
                   eval_every: Any, out_dir: Any, tensorboard: bool, max_iters: Any, seed: Any) -> None:  # fmt: skip
    """TypeError / ValueError naming the first argument of ``fit`` that cannot work, before anything runs.

    Introduced in: 06_training.ipynb
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module (e.g. build_ssd(cfg)), got {type(model).__name__}")
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if not isinstance(loader, DataLoader) and not (name == "val_loader" and loader is None):
            raise TypeError(f"{name} must be a torch.utils.data.DataLoader yielding (images, targets) batches "
                            f"(see collate_detection), got {type(loader).__name__}")  # fmt: skip
    _int("epochs", epochs, 1)
    _int("warmup_iters", warmup_iters, 0)
    _int("step_size", step_size, 1)
    _int("eval_every", eval_every, 1)
    _int("max_iters", max_iters, 1, allow_none=True)
    _int("seed", seed, 0, allow_none=True)
    _number("lr", lr, low=0.0, low_open=True)
    _number("momentum", momentum, low=0.0, low_open=False, high=1.0)
    _number("weight_decay", weight_decay, low=0.0, low_open=False)
    _number("gamma", gamma, low=0.0, low_open=True)
    if grad_clip is not None:
        _number("grad_clip", grad_clip, low=0.0, low_open=True,
                hint=" (None: no clipping; a negative max norm flips the gradient, 0 stops learning)")  # fmt: skip
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if tensorboard and out_dir is None:
        raise ValueError("tensorboard=True needs an out_dir to write to")


@contextmanager
def process_group(world_size: int, device: torch.device) -> Iterator[None]:
    """Set up the torchrun process group (gloo on CPU, nccl on CUDA) unless it exists; destroy what was created."""
    created = world_size > 1 and not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield
    finally:
        if created:
            dist.destroy_process_group()


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM during ``fit``; ``saved`` is the checkpoint written at that point, or None.

    Introduced in: 06_training.ipynb
    """

    def __init__(self, signum: int | None = None, position: str = "", saved: Path | None = None) -> None:
        self.signum, self.saved = signum, saved
        name = signal.Signals(signum).name if signum is not None else "KeyboardInterrupt"
        text = f"training interrupted by {name}" + (f" {position}" if position else "")
        if position:
            text += f"; resume from {saved}" if saved is not None else "; nothing was saved (no out_dir)"
        super().__init__(text)


class SafePoints:
    """While active (main thread only), SIGINT and SIGTERM raise TrainingInterrupted, but never inside a
    ``deferred()`` block (an optimizer step, a checkpoint write): there the signal waits for the block's end."""

    def __init__(self) -> None:
        self._depth = 0
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> SafePoints:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self._pending = signum
        if self._depth == 0:
            self._raise()

    def _raise(self) -> None:
        signum, self._pending = self._pending, None
        raise TrainingInterrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._pending is not None:
                self._raise()


@dataclass
class Run:
    """The loop's objects and its position: ``epoch`` is the epoch in progress (0-based, = completed epochs)."""

    net: nn.Module  # the plain model (what checkpoints hold)
    model: nn.Module  # net, or its DistributedDataParallel wrapper (what the loop calls)
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    loader: DataLoader
    iters: int
    device: torch.device
    amp_dtype: torch.dtype | None
    channels_last: bool
    grad_clip: float | None
    cfg: Any
    history: list[dict] = field(default_factory=list)
    best: float | None = None
    start_epoch: int = 0
    resume_point: dict | None = None  # the "interrupted" record of a mid-epoch checkpoint, until it is used
    saved: bool = False  # the current epoch boundary is on disk as last.pt
    epoch: int = 0
    done: int = 0  # iterations completed in the epoch in progress
    sums: Tensor = field(default_factory=lambda: torch.zeros(3, dtype=torch.float64))  # loss_loc, loss_cls, iters
    epoch_rng: dict | None = None  # RNG states at the start of the epoch in progress; None at an epoch boundary
    step_rng: dict | None = None  # RNG states after the last completed iteration
    last_finite: tuple[int, float] | None = None  # (iteration, loss) of the last finite loss of this epoch
    window: LossWindow = field(default_factory=lambda: LossWindow())  # losses of the steps not summed yet

    def begin_epoch(self, epoch: int, rng: dict, point: dict | None) -> None:
        self.epoch, self.last_finite, self.window = epoch, None, LossWindow()
        if point is None:
            self.done, self.sums, self.epoch_rng, self.step_rng = 0, torch.zeros(3, dtype=torch.float64), rng, rng
        else:
            self.done, self.epoch_rng, self.step_rng = int(point["iteration"]), point["epoch_rng"], point["rng"]
            self.sums = point["sums"].detach().cpu().double().clone()

    def step_done(self) -> None:
        self.done += 1
        self.step_rng = rng_state()

    def end_epoch(self, saved: bool) -> None:
        self.epoch, self.done, self.epoch_rng, self.step_rng, self.saved = self.epoch + 1, 0, None, None, saved

    def at_boundary(self) -> bool:
        return self.epoch_rng is None

    def position(self) -> dict[str, Any]:
        """What a mid-epoch checkpoint stores besides the usual state (the step RNG goes into its ``rng``)."""
        return {"epoch": self.epoch, "iteration": self.done, "iters_per_epoch": self.iters,
                "epoch_rng": self.epoch_rng, "sums": self.sums.clone()}  # fmt: skip

    def describe_position(self) -> str:
        if self.at_boundary():
            return f"after epoch {self.epoch}" if self.epoch else "before the first epoch"
        return f"in epoch {self.epoch + 1} after iteration {self.done} of {self.iters}"


class LossWindow:
    """The last few iterations' losses, kept on the device until ``read`` (one host sync per log interval)."""

    SIZE = 10

    def __init__(self) -> None:
        self.losses: list[Tensor] = []
        self.steps: list[tuple[int, float]] = []  # (iteration, lr)

    def add(self, it: int, losses: Tensor, lr: float) -> None:
        self.losses.append(losses)
        self.steps.append((it, lr))

    def __len__(self) -> int:
        return len(self.losses)

    def read(self) -> Tensor:
        return torch.stack(self.losses).double().cpu()  # [n, 2]

    def clear(self) -> None:
        self.losses, self.steps = [], []


def weights_finite(net: nn.Module) -> bool:
    """True when no parameter holds a NaN or inf (one host sync)."""
    flags = [p.detach().isfinite().all() for p in net.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def write_json_atomic(path: Path, obj: Any) -> None:
    """``path`` gets ``obj`` as JSON through a temp file and ``os.replace``: never half a file."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        tmp.write_text(json.dumps(obj, indent=1))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
