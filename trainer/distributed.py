"""torch.distributed plumbing: detect a torchrun launch, join the process group, shard the data.

phasetrain runs on PyTorch's own engine: torchrun starts the processes, torch.distributed connects
them (NCCL on CUDA, Gloo on CPU) and DistributedDataParallel averages the gradients. This module
holds every call into torch.distributed the trainer makes; docs/distributed.md describes the result.
"""

from __future__ import annotations

import datetime
import os
import sys
import warnings
import weakref
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler

_initializations = 0
"""Process groups this process has initialized; names a fresh key space in the launcher's store."""

_wrapped_models: weakref.WeakSet = weakref.WeakSet()
"""The DistributedDataParallel wrappers made by ``wrap_model``; teardown frees their C++ reducers."""


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


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) of this process: from the process group when there is one, else from
    torchrun's ``RANK``/``WORLD_SIZE`` environment (so samplers can be built before the group is)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def choose_backend(requested_device: str | torch.device | None) -> str:
    """NCCL when the run will use CUDA (a CUDA device requested, or none requested and CUDA
    available), else Gloo: a ``device="cpu"`` run on a GPU machine must not get NCCL."""
    if not torch.cuda.is_available():
        return "gloo"
    return "gloo" if requested_device is not None and torch.device(requested_device).type != "cuda" else "nccl"


def setup_distributed(requested_device: str | torch.device | None = None, timeout_s: float = 600.0) -> DistributedInfo:
    """Join the process group of a torchrun launch (NCCL on CUDA, Gloo on CPU), if any.

    A process group the user initialized is used as it is and left for them to destroy.

    Args:
        requested_device: the device the Trainer was given (None: CUDA when available).
        timeout_s: how long a collective may wait for the other ranks.

    Raises:
        RuntimeError: WORLD_SIZE > 1 but torch was built without torch.distributed.
    """
    if not launched_distributed():
        return DistributedInfo()
    if not dist.is_available():
        raise RuntimeError(
            f"distributed: WORLD_SIZE is {os.environ.get('WORLD_SIZE')} but this torch build has no torch.distributed; "
            "install a torch build with distributed support or run a single process."
        )
    owns = not dist.is_initialized()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if owns:
        backend = choose_backend(requested_device)
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        _init_process_group(backend, datetime.timedelta(seconds=timeout_s))
    return DistributedInfo(
        rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, owns_process_group=owns
    )


def _init_process_group(backend: str, timeout: datetime.timedelta) -> None:
    """``init_process_group`` over torchrun's store, under a key prefix of its own.

    The launcher's store outlives our process groups. A second group initialized in the same process
    (a script that trains twice) would otherwise read the first group's stale connection keys and
    hang; a prefix per initialization gives each group fresh keys (every rank counts the same).
    """
    global _initializations
    store, rank, world_size = next(dist.rendezvous("env://", timeout=timeout))
    store = dist.PrefixStore(f"phasetrain/{_initializations}", store)
    _initializations += 1
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size, timeout=timeout)


def choose_device(requested: str | torch.device | None, info: DistributedInfo) -> torch.device:
    """The requested device, else ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.

    In a distributed run a bare "cuda" also means ``cuda:LOCAL_RANK``: one GPU per process.
    """
    if requested is not None:
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None and info.is_distributed:
            return torch.device("cuda", info.local_rank)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def wrap_model(net: torch.nn.Module, device: torch.device, info: DistributedInfo) -> torch.nn.Module:
    """Wrap the model in DistributedDataParallel when distributed (DDP copies rank 0's weights to all)."""
    if not info.is_distributed:
        return net
    device_ids = [device.index] if device.type == "cuda" else None
    wrapped = torch.nn.parallel.DistributedDataParallel(net, device_ids=device_ids)
    _wrapped_models.add(wrapped)
    return wrapped


def warn_if_not_sharded(loader: object, name: str, info: DistributedInfo) -> None:
    """Warn when a distributed run gets a loader that every rank reads whole."""
    sampler = getattr(loader, "sampler", None)
    if info.is_distributed and loader is not None and not isinstance(sampler, DistributedSampler):
        warnings.warn(
            f"{name}: distributed run with {info.world_size} processes, but the loader has no DistributedSampler, "
            "so every rank reads the whole data set (each epoch sees it world_size times). Build it with "
            "trainer.distributed.build_loader(dataset, batch_size, shuffle) or "
            "DataLoader(dataset, batch_size, sampler=DistributedSampler(dataset, shuffle=...)), or pass a "
            "plain DataLoader (no sampler of its own) with shard_loaders on, which the trainer shards.",
            stacklevel=4,  # the line that called Trainer.train
        )


def is_plain_loader(loader: object) -> bool:
    """A ``DataLoader`` whose order the user left to torch: its sampler is a plain ``SequentialSampler``
    (``shuffle=False``) or a ``RandomSampler`` without replacement over the whole data set
    (``shuffle=True``), and torch batches it (no ``batch_sampler`` of the user's)."""
    if type(loader) is not DataLoader or loader.batch_size is None:  # batch_size None: a user batch_sampler
        return False
    sampler = loader.sampler
    if type(loader.batch_sampler) is not BatchSampler or loader.batch_sampler.sampler is not sampler:
        return False
    if type(sampler) is RandomSampler:
        return not sampler.replacement and sampler._num_samples is None
    return type(sampler) is SequentialSampler


def shard_loader(loader: DataLoader, info: DistributedInfo, seed: int) -> DataLoader:
    """``loader`` rebuilt with a ``DistributedSampler`` for this rank, keeping its other settings.

    The sampler shuffles when the loader did (a ``RandomSampler``), seeded with ``seed`` (every
    rank draws the same permutation; the trainer calls ``set_epoch`` each epoch) and drops the
    uneven tail when the loader drops its last incomplete batch, as ``build_loader`` does.

    Args:
        loader: a loader for which ``is_plain_loader`` is True.
        info: this process's rank and the world size.
        seed: the sampler's seed.
    """
    sampler = DistributedSampler(
        loader.dataset,
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=type(loader.sampler) is RandomSampler,
        seed=seed,
        drop_last=loader.drop_last,
    )
    settings = {
        "batch_size": loader.batch_size,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "drop_last": loader.drop_last,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": loader.generator,
        "persistent_workers": loader.persistent_workers,
        "pin_memory_device": loader.pin_memory_device,
    }
    if loader.num_workers > 0:
        settings["prefetch_factor"] = loader.prefetch_factor
    if hasattr(loader, "in_order"):  # torch >= 2.6
        settings["in_order"] = loader.in_order
    return DataLoader(loader.dataset, sampler=sampler, **settings)


def shard_plain_loaders(loaders: dict[str, object], info: DistributedInfo, seed: int) -> dict[str, object]:
    """Each plain loader of ``loaders`` ({where: loader}) sharded with ``shard_loader``, the others as
    they are; rank 0 says once which were rebuilt. Nothing changes in a single process."""
    if not info.is_distributed:
        return loaders
    sharded = {
        name: shard_loader(loader, info, seed) if is_plain_loader(loader) else loader
        for name, loader in loaders.items()
    }
    rebuilt = [name for name in loaders if sharded[name] is not loaders[name]]
    if rebuilt and info.rank == 0:
        print(
            f"distributed: {', '.join(rebuilt)} rebuilt with a DistributedSampler (seed {seed}) over "
            f"{info.world_size} processes, keeping batch size, shuffle, workers and collate function; "
            "training param shard_loaders: false turns this off.",
            file=sys.stderr,
        )
    return sharded


def all_reduce_sum(tensor: torch.Tensor, info: DistributedInfo) -> torch.Tensor:
    """Sum ``tensor`` over ranks (a no-op when not distributed)."""
    if info.is_distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device, info: DistributedInfo) -> bool:
    """True when ``flag`` is true on any rank, on every rank (``flag`` itself when not distributed).

    Used for ``stop_training``: a callback that stops on one rank only would otherwise leave the
    others waiting in the next collective.
    """
    if not info.is_distributed:
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def teardown_distributed(info: DistributedInfo) -> None:
    """Free the DDP wrappers' reducers, then destroy the process group when the trainer created it.

    The order matters. DDP's C++ reducer holds the process group; if it held the last reference, the
    group's destructor would run inside the reducer's, with the GIL held, and join Gloo's worker
    threads while one of them waits for the GIL to free the tensors of the last collective: a
    deadlock (pytorch/pytorch#56297). Freed here, the reducers let the group die through its own
    Python object, whose destructor releases the GIL. The wrappers cannot run forward after this.
    """
    if not info.is_distributed:
        return
    for wrapped in list(_wrapped_models):
        for name in ("logger", "reducer"):  # the C++ Logger holds the reducer too
            wrapped.__dict__.pop(name, None)
    _wrapped_models.clear()
    if info.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    drop_last: bool = False,
    num_workers: int = 0,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader that shards ``dataset`` with a DistributedSampler when distributed.

    Works before the process group exists (rank and world size come from torchrun's environment),
    so a script builds its loaders first and then calls ``Trainer.train``. The sampler is seeded and
    the trainer calls ``set_epoch`` every epoch, so shuffling differs per epoch and is the same in
    every run. Rank r of W reads items r, r + W, r + 2W, ... of the epoch's order; when W does not
    divide the data set, the sampler repeats a few items so that every rank gets as many batches
    (``drop_last=True`` drops the remainder instead).

    Args:
        dataset: a sized data set.
        batch_size: samples per batch on each rank; the global batch is ``batch_size * world_size``.
        shuffle: shuffle every epoch.
        drop_last: drop the last incomplete batch (and, when distributed, the uneven tail of the data).
        num_workers: DataLoader worker processes.
        seed: seed of the distributed shuffling (one process shuffles with torch's seeded global RNG).

    Returns:
        The DataLoader.
    """
    rank, world_size = rank_and_world_size()
    if world_size > 1:
        sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last, num_workers=num_workers)
    # One process: the RandomSampler draws from torch's global RNG, which checkpoints save and restore.
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=num_workers)
