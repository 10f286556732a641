"""Checkpoints: atomic save, safe load (``weights_only=True``), config checks and the shipped model.

A checkpoint is a plain dict: ``model`` (state_dict), ``optimizer``, ``scheduler``, ``scaler``, ``epoch``
(completed epochs), ``config`` (``SSDConfig.to_dict()``), ``class_names``, ``rng`` (torch, numpy and Python
random states as tensors and plain numbers), ``metrics`` and ``extra``. Everything in it is tensors and plain
data, so ``torch.load(..., weights_only=True)`` can read it without running any pickled code.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import os
import random
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import SSDConfig

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "load_pretrained",
    "rng_state",
    "restore_rng_state",
    "unwrap_model",
    "PRETRAINED_DIR",
]

# Shipped checkpoints are package data (ssd_tutorial/pretrained/*.pt), found through importlib.resources, so a
# wheel installed into site-packages finds them as a source checkout does (a plain folder in both cases).
PRETRAINED_DIR = Path(str(resources.files("ssd_tutorial").joinpath("pretrained")))


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / DataParallel / torch.compile wrappers.

    Introduced in: 06_training.ipynb
    """
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python ``random`` states as tensors and plain numbers.

    Introduced in: 06_training.ipynb
    """
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
        "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": py_gauss},
    }  # fmt: skip
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`.

    Introduced in: 06_training.ipynb
    """
    torch.set_rng_state(state["torch"].cpu())
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].cpu().numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))  # fmt: skip
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    *,
    epoch: int = 0,
    cfg: SSDConfig | None = None,
    metrics: dict | None = None,
    extra: dict | None = None,
    scaler: Any = None,
) -> Path:
    """Write a checkpoint atomically: a temp file in the same directory, fsync, then ``os.replace``.

    A crash mid-write leaves the previous file at ``path`` untouched. ``cfg`` defaults to ``model.cfg``;
    ``epoch`` is the number of completed epochs. Returns the path written.

    Introduced in: 06_training.ipynb
    """
    net = unwrap_model(model)
    cfg = cfg if cfg is not None else getattr(net, "cfg", None)
    if cfg is not None and not isinstance(cfg, SSDConfig):
        raise TypeError(f"cfg must be an SSDConfig or None, got {type(cfg).__name__}")
    checkpoint: dict[str, Any] = {
        "model": net.state_dict(),
        "epoch": int(epoch),
        "config": cfg.to_dict() if cfg is not None else None,
        "class_names": list(cfg.class_names) if cfg is not None else None,
        "rng": rng_state(),
        "metrics": metrics if metrics is not None else {},
        "extra": extra if extra is not None else {},
    }
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        checkpoint["scheduler"] = scheduler.state_dict()
    if scaler is not None:
        checkpoint["scaler"] = scaler.state_dict()
    return write_atomic(path, checkpoint)


def write_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` through a temp file + fsync + ``os.replace``.

    Introduced in: 06_training.ipynb
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    map_location: str | torch.device = "cpu",
    *,
    scaler: Any = None,
) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and load it into the objects given.

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` naming the file for a truncated or
    corrupt one, and ``ValueError`` naming the fields when the checkpoint's config differs from ``model.cfg``.
    Returns the checkpoint dict.

    Introduced in: 06_training.ipynb
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, forbidden global: all mean "not a readable checkpoint"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"cannot read checkpoint {str(path)!r}: the file is truncated, corrupt or not a "
                         f"checkpoint of save_checkpoint ({type(exc).__name__}: {reason})") from exc  # fmt: skip
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        got = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"checkpoint {str(path)!r}: expected a dict with a 'model' state_dict, got {got}")
    if model is not None:
        net = unwrap_model(model)
        check_config(checkpoint.get("config"), getattr(net, "cfg", None), path)
        net.load_state_dict(checkpoint["model"])
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if target is None:
            continue
        if name not in checkpoint:
            raise ValueError(f"checkpoint {str(path)!r} has no {name} state (keys: {sorted(checkpoint)})")
        target.load_state_dict(checkpoint[name])
    return checkpoint


def check_config(saved: dict | None, cfg: SSDConfig | None, path: str | os.PathLike = "<checkpoint>") -> None:
    """ValueError naming every field where the checkpoint's config differs from ``cfg`` (None: nothing to check).

    Introduced in: 06_training.ipynb
    """
    if saved is None or cfg is None:
        return
    mine = cfg.to_dict()
    diffs = [f"{key}: checkpoint {saved.get(key)!r}, model {mine.get(key)!r}"
             for key in sorted(set(saved) | set(mine)) if saved.get(key) != mine.get(key)]  # fmt: skip
    if diffs:
        raise ValueError(f"checkpoint {str(path)!r} was saved with a different config; mismatching fields: "
                         + "; ".join(diffs))  # fmt: skip


def load_pretrained(
    name_or_path: str | os.PathLike = "tiny_shapes", *, device: str | torch.device = "cpu"
) -> nn.Module:
    """An SSD rebuilt from a checkpoint's config and weights, in eval mode.

    ``"tiny_shapes"`` is the shipped TINY_SHAPES model (package data, ``ssd_tutorial/pretrained/tiny_shapes.pt``);
    any other value is a path to a checkpoint written by ``fit`` / ``save_checkpoint``.

    Introduced in: 06_training.ipynb
    """
    path = Path(name_or_path)
    if not path.is_file() and isinstance(name_or_path, str) and "/" not in name_or_path and path.suffix != ".pt":
        shipped = PRETRAINED_DIR / f"{name_or_path}.pt"
        if not shipped.is_file():
            available = sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))
            raise ValueError(f"no pretrained model {name_or_path!r}; shipped: {available or 'none'} "
                             f"(in {PRETRAINED_DIR}), or pass a checkpoint path")  # fmt: skip
        path = shipped
    checkpoint = load_checkpoint(path)
    if checkpoint.get("config") is None:
        raise ValueError(f"checkpoint {str(path)!r} has no config; build the model yourself and use load_checkpoint")
    from .model import build_ssd

    model = build_ssd(SSDConfig.from_dict(checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])  # copies into float32 parameters even from a float16 state
    return model.to(device).eval()
