"""torch.distributed plumbing: detect a torchrun launch, pick the device, wrap the model."""

from __future__ import annotations

import datetime
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 when not distributed).
        world_size: number of processes (1 when not distributed).
        local_rank: rank on this node; picks the CUDA device.
        owns_process_group: True when the trainer initialized the process group (and destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_process_group: bool = False

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def launched_distributed() -> bool:
    """True under torchrun (WORLD_SIZE > 1) or when the user already initialized a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup_distributed(timeout_s: float = 600.0) -> DistributedInfo:
    """Join the process group of a torchrun launch (NCCL on CUDA, Gloo on CPU), if any.

    A process group the user initialized is used as it is and left for them to destroy.
    """
    if not dist.is_available() or not launched_distributed():
        return DistributedInfo()
    owns = not dist.is_initialized()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if owns:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistributedInfo(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, owns_process_group=owns
    )


def choose_device(requested: str | torch.device | None, info: DistributedInfo) -> torch.device:
    """The requested device, else ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU."""
    if requested is not None:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def wrap_model(net: torch.nn.Module, device: torch.device, info: DistributedInfo) -> torch.nn.Module:
    """Wrap the model in DistributedDataParallel when distributed."""
    if not info.is_distributed:
        return net
    device_ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(net, device_ids=device_ids)


def warn_if_not_sharded(loader: object, name: str, info: DistributedInfo) -> None:
    """Warn when a distributed run gets a loader that every rank reads whole."""
    sampler = getattr(loader, "sampler", None)
    if info.is_distributed and loader is not None and not isinstance(sampler, torch.utils.data.DistributedSampler):
        warnings.warn(
            f"{name}: distributed run with {info.world_size} processes, but the loader has no DistributedSampler, "
            "so every rank reads the whole data set. Build it with "
            "DataLoader(dataset, sampler=DistributedSampler(dataset, shuffle=...), ...).",
            stacklevel=3,
        )


def all_reduce_sum(tensor: torch.Tensor, info: DistributedInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks (a no-op when not distributed)."""
    if info.is_distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def teardown_distributed(info: DistributedInfo) -> None:
    """Destroy the process group when the trainer created it."""
    if info.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def build_loader(
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    shuffle: bool,
    drop_last: bool = False,
    num_workers: int = 0,
    seed: int = 0,
) -> torch.utils.data.DataLoader:
    """A DataLoader that shards ``dataset`` with a DistributedSampler when distributed.

    The sampler is seeded and the trainer calls ``set_epoch`` every epoch, so shuffling differs
    per epoch and is the same in every run.
    """
    if launched_distributed():
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        return torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, num_workers=num_workers
        )
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers
    )
