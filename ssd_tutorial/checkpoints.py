"""Checkpoints: atomic save, safe load (``weights_only=True``), config checks and the shipped model.

A checkpoint is a plain dict: ``model`` (state_dict), ``optimizer``, ``scheduler``, ``scaler``, ``epoch``
(completed epochs), ``config`` (``SSDConfig.to_dict()``), ``class_names``, ``rng`` (torch, numpy and Python
random states as tensors and plain numbers), ``metrics`` and ``extra``. Everything in it is tensors and plain
data, so ``torch.load(..., weights_only=True)`` can read it without running any pickled code.

Longer than ~300 lines because it also guards the run folder (``prepare_out_dir``, ``check_run_folder``,
``run_lock``): the code that makes sure no run overwrites another sits next to the code that writes the files.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    "prepare_out_dir",
    "run_lock",
    "check_run_folder",
    "RUN_FILES",
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
    rng: dict | None = None,
) -> Path:
    """Write a checkpoint atomically: a temp file in the same directory, fsync, then ``os.replace``.

    A crash mid-write leaves the previous file at ``path`` untouched. ``cfg`` defaults to ``model.cfg``;
    ``epoch`` is the number of completed epochs; ``rng`` (default: the current states) is what a resumed
    unseeded run restores. Returns the path written.

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
        "rng": rng if rng is not None else rng_state(),
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

    The file gets the normal mode of new files (0666 minus the umask), like the rest of the run folder.
    Temp files that a killed earlier save of ``path`` left behind are removed first.

    Introduced in: 06_training.ipynb
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any new file
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(folder: str | os.PathLike, name: str = "*") -> list[Path]:
    """Delete the hidden temp files (``.NAME.xxxx.tmp``) of interrupted saves in ``folder``; returns them.

    Introduced in: 06_training.ipynb
    """
    stale = sorted(Path(folder).glob(f".{name}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


# What a training run leaves in its folder: another run must not write over them unasked.
RUN_FILES = ("last.pt", "best.pt", "history.json")
LOCK_NAME = "train.lock"


def prepare_out_dir(out_dir: str | os.PathLike) -> Path:
    """Create the output folder of a run and check that it is a writable folder (before any work is done).

    Introduced in: 06_training.ipynb
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output folder {str(out)!r} is a file, not a folder; choose another out_dir")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(f"cannot create output folder {str(out)!r}: {err.strerror or err}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(f"output folder {str(out)!r} is not writable by this user")
    return out


def check_run_folder(out_dir: str | os.PathLike, *, resume: str | os.PathLike | None, overwrite: bool,
                     epochs: int) -> None:  # fmt: skip
    """What ``python -m ssd_tutorial train`` checks before loading any data: it does not replace a run in
    ``out_dir`` unasked (``overwrite`` deletes it), and a ``resume`` must leave epochs to train.

    Introduced in: 06_training.ipynb
    """
    out = Path(out_dir)
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and resume is None and not overwrite:
        raise FileExistsError(f"{out} already holds a training run ({', '.join(existing)}); pass --resume "
                              f"{out / 'last.pt'} to continue it, --overwrite to replace it, or another --out")
    if existing and resume is None:
        for name in existing:
            (out / name).unlink()
    if resume is not None:
        checkpoint = load_checkpoint(resume)
        done = int(checkpoint.get("epoch", 0)) if "optimizer" in checkpoint else 0
        if epochs <= done:
            raise ValueError(f"--resume {resume}: that run has done {done} epoch(s) already and --epochs is "
                             f"{epochs}; pass --epochs above {done} to train longer")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@contextmanager
def run_lock(out_dir: str | os.PathLike | None, note: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``out_dir/train.lock`` (pid and host of this process) so that no other training writes there.

    A lock of a live process raises FileExistsError naming it; the lock of a process that is gone (same host)
    is taken over, and ``note`` is told so. Re-entering from the process that holds the lock is a no-op.
    Stale temp files of killed saves are removed once the lock is held. ``None``: no lock, no folder.

    Introduced in: 06_training.ipynb
    """
    if out_dir is None:
        yield
        return
    out = prepare_out_dir(out_dir)
    lock = out / LOCK_NAME
    me = f"{os.getpid()} {socket.gethostname()}"
    if _read_lock(lock) == me:  # already ours (the CLI takes it before loading data, then fit enters again)
        yield
        return
    _take_lock(lock, me, note)
    try:
        remove_stale_temps(out)
        yield
    finally:
        if _read_lock(lock) == me:
            lock.unlink(missing_ok=True)


def _read_lock(lock: Path) -> str | None:
    try:
        return lock.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _take_lock(lock: Path, me: str, note: Callable[[str], None] | None) -> None:
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            owner = _read_lock(lock) or ""
            pid_text, _, host = owner.partition(" ")
            pid = int(pid_text) if pid_text.isdigit() else None
            if pid is not None and host == socket.gethostname() and not _pid_alive(pid):
                if note is not None:
                    note(f"taking over the stale lock {lock} of process {pid}, which is no longer running")
                lock.unlink(missing_ok=True)
                continue
            raise FileExistsError(f"output folder {str(lock.parent)!r} is in use by another training (process "
                                  f"{pid_text or '?'} on host {host or '?'}, lock file {lock}); wait for it to "
                                  "finish or write to another folder") from None  # fmt: skip
        with os.fdopen(fd, "w") as f:
            f.write(me + "\n")
        return
    raise FileExistsError(f"cannot take the lock {lock}: another process keeps re-creating it")


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
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {str(path)!r} is a directory, not a checkpoint file "
                                f"(a run folder holds last.pt and best.pt)")  # fmt: skip
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
        load_weights(net, checkpoint["model"], path)
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


def load_weights(net: nn.Module, state: dict, path: str | os.PathLike = "<checkpoint>") -> None:
    """``net.load_state_dict(state)``, or a ValueError naming the file and the first mismatching keys/shapes.

    Introduced in: 06_training.ipynb
    """
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} is {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} in the model"
              for k in own if k in state and getattr(state[k], "shape", None) != own[k].shape]  # fmt: skip
    problems = [(f"{len(missing)} missing, e.g. ", missing), (f"{len(unexpected)} unexpected, e.g. ", unexpected),
                (f"{len(shapes)} of another shape: ", shapes)]  # fmt: skip
    found = [head + ", ".join(items[:3]) for head, items in problems if items]
    if found:
        raise ValueError(f"checkpoint {str(path)!r}: its weights do not fit the {type(net).__name__} model (was it "
                         f"saved from another config or architecture?): " + "; ".join(found))  # fmt: skip
    net.load_state_dict(state)


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
    load_weights(model, checkpoint["model"], path)  # copies into float32 parameters even from a float16 state
    return model.to(device).eval()
