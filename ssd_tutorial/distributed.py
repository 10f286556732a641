"""Devices, DDP plumbing and reproducible data order for ``fit``.

Under ``torchrun`` each process trains on its own shard of the data (DistributedSampler) and
DistributedDataParallel averages the gradients, so all ranks keep identical weights. With a seed, the data
order and augmentation of epoch e are a function of (seed, e, rank) alone, which is what makes a resumed
run bit-identical to an uninterrupted one.

Introduced in: 06_training.ipynb
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, RandomSampler, SequentialSampler

__all__ = ["distributed_env", "available_devices", "resolve_device", "pick_device", "model_device", "seed_epoch",
           "distributed_loader", "rebuild_loader", "RecordingSampler"]  # fmt: skip


def distributed_env() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment variables; (0, 1) outside torchrun.

    Introduced in: 06_training.ipynb
    """
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def available_devices() -> list[str]:
    """The devices this machine can train on: ``cpu``, then ``cuda:0`` … and ``mps`` where present.

    Introduced in: 06_training.ipynb
    """
    names = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device``; ValueError naming it and the available devices if it cannot be used.

    Introduced in: 06_training.ipynb
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    available = ", ".join(available_devices())
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {str(device)!r} is not a device name; available here: {available}") from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {str(device)!r} is not available: torch sees no CUDA GPU on this machine; "
                             f"available here: {available}")  # fmt: skip
        if chosen.index is not None and chosen.index >= count:
            raise ValueError(f"device {str(device)!r} is not available: this machine has {count} CUDA GPU(s); "
                             f"available here: {available}")  # fmt: skip
    elif chosen.type == "mps" and "mps" not in available:
        raise ValueError(f"device {str(device)!r} is not available here; available here: {available}")
    return chosen


def pick_device(model: nn.Module, device: str | torch.device | None, distributed: bool) -> torch.device:
    """The given device, else the model's; under torchrun CUDA means ``cuda:LOCAL_RANK``.

    Introduced in: 06_training.ipynb
    """
    wanted = resolve_device(device) if device is not None else None
    if not distributed:
        return wanted if wanted is not None else model_device(model)
    if torch.cuda.is_available() and (wanted is None or wanted.type == "cuda"):
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(chosen)
        return chosen
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters).

    Introduced in: 06_training.ipynb
    """
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def seed_epoch(seed: int, epoch: int, rank: int = 0) -> None:
    """Seed torch, numpy and random from (seed, epoch, rank), so each epoch's data order is reproducible.

    Introduced in: 06_training.ipynb
    """
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(2)  # two well-mixed uint32
    value = (int(state[0]) << 32) | int(state[1])
    torch.manual_seed(value)
    np.random.seed(int(state[0]))
    random.seed(value)


def distributed_loader(loader: DataLoader, *, rank: int, world_size: int, seed: int) -> DataLoader:
    """The same loader drawing from a DistributedSampler (shuffled iff ``loader`` shuffles).

    Only loaders whose order DistributedSampler can reproduce are accepted: a map-style dataset with
    ``shuffle=True`` or ``False`` (a RandomSampler without replacement, or a SequentialSampler) and a
    ``batch_size``. Anything else (a weighted or custom sampler, a batch_sampler, an IterableDataset) raises a
    ValueError instead of being silently re-sampled; shard such data yourself and pass a DistributedSampler.

    Introduced in: 06_training.ipynb
    """
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    where = "under DDP (torchrun), train_loader"
    if isinstance(loader.dataset, IterableDataset):
        raise ValueError(f"{where} has an IterableDataset, which DistributedSampler cannot shard; shard it "
                         "by rank inside the dataset, or use a map-style dataset")  # fmt: skip
    if loader.batch_size is None:
        raise ValueError(f"{where} must be built with batch_size, got a custom batch_sampler "
                         f"({type(loader.batch_sampler).__name__})")  # fmt: skip
    sampler = loader.sampler
    plain_random = (type(sampler) is RandomSampler and not sampler.replacement
                    and getattr(sampler, "_num_samples", None) is None)  # fmt: skip
    if not (plain_random or type(sampler) is SequentialSampler):
        raise ValueError(f"{where} uses a {type(sampler).__name__}, which DistributedSampler cannot "
                         "reproduce; build it with shuffle=True/False or pass a DistributedSampler")  # fmt: skip
    sampler = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank, shuffle=plain_random, seed=seed,
                                 drop_last=loader.drop_last)  # fmt: skip
    return rebuild_loader(loader, sampler)


def rebuild_loader(loader: DataLoader, sampler: Any) -> DataLoader:
    """A copy of ``loader`` drawing from ``sampler``, every other DataLoader option kept.

    Introduced in: 06_training.ipynb
    """
    if loader.batch_size is None:
        raise ValueError("rebuild_loader needs a loader built with batch_size (not a custom batch_sampler)")
    options = dict(batch_size=loader.batch_size, num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                   pin_memory=loader.pin_memory, drop_last=loader.drop_last, timeout=loader.timeout,
                   worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
                   generator=loader.generator, persistent_workers=loader.persistent_workers,
                   pin_memory_device=loader.pin_memory_device, in_order=getattr(loader, "in_order", True))  # fmt: skip
    if loader.num_workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
    return DataLoader(loader.dataset, sampler=sampler, **options)


class RecordingSampler:
    """Wraps a sampler and remembers the indices it handed out, per epoch (``set_epoch``) and in the last pass.

    Introduced in: 06_training.ipynb
    """

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.seen: list[int] = []
        self.by_epoch: dict[int, list[int]] = {}

    def __iter__(self):
        self.seen.clear()  # the list of the current epoch, if set_epoch made one
        for index in self.sampler:
            self.seen.append(int(index))
            yield index

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.seen = self.by_epoch.setdefault(epoch, [])
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
