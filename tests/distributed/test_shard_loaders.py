"""trainer.distributed.shard_plain_loaders in one process: which loaders are rebuilt, and what they keep.

A DistributedSampler given ``num_replicas`` and ``rank`` needs no process group, so rank 1 of 2 is
checked here exactly; tests/distributed/test_ddp_plain_loaders.py runs the real thing under torchrun.
"""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, SequentialSampler, TensorDataset

from trainer import distributed
from trainer.distributed import DistributedInfo

TWO_PROCESSES = DistributedInfo(rank=1, world_size=2, local_rank=0)


def _dataset(size: int = 10) -> TensorDataset:
    return TensorDataset(torch.arange(size, dtype=torch.float32).unsqueeze(1), torch.zeros(size, dtype=torch.long))


def _collate(batch):
    return torch.utils.data.default_collate(batch)


def _worker_init(worker_id: int) -> None:
    pass


def _items(loader: DataLoader) -> list[float]:
    return [value for inputs, _ in loader for value in inputs.flatten().tolist()]


def test_a_plain_shuffled_loader_is_rebuilt_with_a_seeded_distributed_sampler(capsys):
    generator = torch.Generator().manual_seed(5)
    plain = DataLoader(
        _dataset(10),
        batch_size=3,
        shuffle=True,
        collate_fn=_collate,
        pin_memory=False,
        drop_last=True,
        num_workers=1,
        worker_init_fn=_worker_init,
        generator=generator,
        persistent_workers=True,
        prefetch_factor=3,
        timeout=7.0,
    )
    sharded = distributed.shard_plain_loaders({"train_loader": plain}, TWO_PROCESSES, seed=4)["train_loader"]
    sampler = sharded.sampler
    assert type(sampler) is DistributedSampler
    assert (sampler.num_replicas, sampler.rank, sampler.shuffle, sampler.seed, sampler.drop_last) == (
        2,
        1,
        True,
        4,
        True,
    )
    assert sharded.dataset is plain.dataset
    assert (sharded.batch_size, sharded.drop_last, sharded.num_workers, sharded.pin_memory) == (3, True, 1, False)
    assert (sharded.collate_fn, sharded.worker_init_fn, sharded.generator) == (_collate, _worker_init, generator)
    assert (sharded.persistent_workers, sharded.prefetch_factor, sharded.timeout) == (True, 3, 7.0)
    # Rank 1 of 2 reads items 1, 3, 5, 7, 9 of the permutation of seed + epoch; one full batch of 3 (drop_last).
    sampler.set_epoch(2)
    permutation = torch.randperm(10, generator=torch.Generator().manual_seed(4 + 2)).tolist()
    assert list(sampler) == permutation[1::2]
    assert len(sharded) == 1
    # Rank 1 says nothing (rank 0 does, once).
    assert capsys.readouterr().err == ""


def test_rank_zero_says_once_which_loaders_it_rebuilt(capsys):
    loaders = {
        "train_loader": DataLoader(_dataset(), batch_size=2, shuffle=True),
        "valid_loader": DataLoader(_dataset(), batch_size=4),
        "test_loaders['test']": DataLoader(_dataset(), batch_size=4, sampler=SequentialSampler(_dataset())),
    }
    sharded = distributed.shard_plain_loaders(loaders, DistributedInfo(rank=0, world_size=2), seed=42)
    # An explicit SequentialSampler is still a plain one: torch makes the same for shuffle=False.
    assert [type(loader.sampler) for loader in sharded.values()] == [DistributedSampler] * 3
    valid = sharded["valid_loader"]
    assert (valid.sampler.shuffle, valid.batch_size) == (False, 4)
    assert _items(valid) == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert capsys.readouterr().err == (
        "distributed: train_loader, valid_loader, test_loaders['test'] rebuilt with a DistributedSampler (seed 42) "
        "over 2 processes, keeping batch size, shuffle, workers and collate function; training param "
        "shard_loaders: false turns this off.\n"
    )


class EveryOtherSampler(torch.utils.data.Sampler):
    """A user's own sampler."""

    def __init__(self, size: int):
        self.size = size

    def __iter__(self):
        return iter(range(0, self.size, 2))

    def __len__(self) -> int:
        return (self.size + 1) // 2


def test_loaders_with_their_own_sampler_or_batch_sampler_are_left_alone(capsys):
    dataset = _dataset()
    own_sampler = DataLoader(dataset, batch_size=2, sampler=EveryOtherSampler(10))
    own_batches = DataLoader(dataset, batch_sampler=BatchSampler(SequentialSampler(dataset), 3, False))
    with_replacement = DataLoader(
        dataset, batch_size=2, sampler=torch.utils.data.RandomSampler(dataset, replacement=True)
    )
    already = DataLoader(dataset, batch_size=2, sampler=DistributedSampler(dataset, num_replicas=2, rank=0))
    loaders = {"a": own_sampler, "b": own_batches, "c": with_replacement, "d": already, "e": None}
    sharded = distributed.shard_plain_loaders(loaders, DistributedInfo(rank=0, world_size=2), seed=0)
    assert all(sharded[name] is loaders[name] for name in loaders)
    assert capsys.readouterr().err == ""


def test_one_process_keeps_every_loader():
    plain = DataLoader(_dataset(), batch_size=2, shuffle=True)
    assert distributed.shard_plain_loaders({"train_loader": plain}, DistributedInfo(), seed=0)["train_loader"] is plain
