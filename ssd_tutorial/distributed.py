"""DDP plumbing and reproducible data order for ``fit``.

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
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

__all__ = ["distributed_env", "pick_device", "model_device", "seed_epoch", "distributed_loader", "rebuild_loader",
           "RecordingSampler"]  # fmt: skip


def distributed_env() -> tuple[int, int]:
    """(rank, world_size) from torchrun's environment variables; (0, 1) outside torchrun.

    Introduced in: 06_training.ipynb
    """
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def pick_device(model: nn.Module, device: str | torch.device | None, distributed: bool) -> torch.device:
    """The given device, else the model's; under torchrun CUDA means ``cuda:LOCAL_RANK``.

    Introduced in: 06_training.ipynb
    """
    if not distributed:
        return torch.device(device) if device is not None else model_device(model)
    wanted = torch.device(device) if device is not None else None
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

    Introduced in: 06_training.ipynb
    """
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    if loader.batch_size is None:
        raise ValueError("under DDP, train_loader must be built with batch_size (not a custom batch_sampler)")
    sampler = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank,
                                 shuffle=isinstance(loader.sampler, RandomSampler), seed=seed,
                                 drop_last=loader.drop_last)  # fmt: skip
    return rebuild_loader(loader, sampler)


def rebuild_loader(loader: DataLoader, sampler: Any) -> DataLoader:
    """A copy of ``loader`` (batch size, workers, collate) drawing from ``sampler``.

    Introduced in: 06_training.ipynb
    """
    if loader.batch_size is None:
        raise ValueError("record_indices needs a loader built with batch_size (not a custom batch_sampler)")
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      worker_init_fn=loader.worker_init_fn, persistent_workers=loader.persistent_workers,
                      generator=loader.generator)  # fmt: skip


class RecordingSampler:
    """Wraps a sampler and remembers the indices it handed out in the current pass.

    Introduced in: 06_training.ipynb
    """

    def __init__(self, sampler: Any) -> None:
        self.sampler = sampler
        self.seen: list[int] = []

    def __iter__(self):
        self.seen = []
        for index in self.sampler:
            self.seen.append(int(index))
            yield index

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
