"""trainer.distributed in one process: what it decides from torchrun's environment, without a launch."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler, TensorDataset

from trainer import Trainer, distributed
from trainer.distributed import DistributedInfo

TWO_PROCESSES = DistributedInfo(rank=1, world_size=2, local_rank=1)


def _dataset(size: int = 10) -> TensorDataset:
    return TensorDataset(torch.arange(size, dtype=torch.float32).unsqueeze(1), torch.zeros(size, dtype=torch.long))


@pytest.fixture
def torchrun_environment(monkeypatch):
    """What torchrun sets for rank 1 of 2 (no process group is created)."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")


@pytest.fixture
def single_environment(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_a_single_process_is_not_distributed(single_environment):
    info = distributed.setup_distributed()
    assert info == DistributedInfo(rank=0, world_size=1, local_rank=0, owns_process_group=False)
    assert not info.is_distributed
    assert not torch.distributed.is_initialized()
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap_model(net, torch.device("cpu"), info) is net
    assert distributed.any_rank(True, torch.device("cpu"), info) is True
    assert distributed.any_rank(False, torch.device("cpu"), info) is False
    totals = torch.tensor([3.0, 2.0])
    assert distributed.all_reduce_sum(totals, info).tolist() == [3.0, 2.0]


def test_rank_and_world_size_come_from_torchrun_environment_before_the_group_exists(torchrun_environment):
    assert distributed.launched_distributed()
    assert distributed.rank_and_world_size() == (1, 2)


def test_build_loader_shards_by_rank_under_torchrun(torchrun_environment):
    loader = distributed.build_loader(_dataset(10), batch_size=2, shuffle=False)
    assert isinstance(loader.sampler, DistributedSampler)
    assert (loader.sampler.num_replicas, loader.sampler.rank) == (2, 1)
    assert len(loader) == 3  # items 1, 3, 5, 7, 9 in batches of 2
    assert [batch[0].flatten().tolist() for batch in loader] == [[1.0, 3.0], [5.0, 7.0], [9.0]]


def test_build_loader_shuffles_per_epoch_with_its_seed(torchrun_environment):
    loader = distributed.build_loader(_dataset(10), batch_size=5, shuffle=True, seed=4)
    order = []
    for epoch in (0, 1, 0):
        loader.sampler.set_epoch(epoch)
        order.append([value for batch in loader for value in batch[0].flatten().tolist()])
    # Rank 1 of 2 reads items 1, 3, 5, ... of the permutation drawn from seed + epoch.
    for epoch, seen in ((0, order[0]), (1, order[1])):
        permutation = torch.randperm(10, generator=torch.Generator().manual_seed(4 + epoch)).tolist()
        assert seen == [float(item) for item in permutation[1::2]]
    assert order[0] != order[1]  # a new order every epoch
    assert order[0] == order[2]  # the same order for the same epoch and seed


def test_build_loader_in_one_process_is_a_plain_loader(single_environment):
    assert isinstance(distributed.build_loader(_dataset(), batch_size=4, shuffle=True).sampler, RandomSampler)
    assert isinstance(distributed.build_loader(_dataset(), batch_size=4, shuffle=False).sampler, SequentialSampler)


def test_a_loader_without_distributed_sampler_warns_how_to_fix_it():
    plain = DataLoader(_dataset(), batch_size=2)
    with pytest.warns(
        UserWarning,
        match=r"train_loader: distributed run with 2 processes, but the loader has no "
        r"DistributedSampler.*trainer\.distributed\.build_loader",
    ):
        distributed.warn_if_not_sharded(plain, "train_loader", TWO_PROCESSES)
    sharded = DataLoader(_dataset(), batch_size=2, sampler=DistributedSampler(_dataset(), num_replicas=2, rank=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        distributed.warn_if_not_sharded(sharded, "train_loader", TWO_PROCESSES)
        distributed.warn_if_not_sharded(plain, "train_loader", DistributedInfo())  # one process: fine
        distributed.warn_if_not_sharded(None, "valid_loader", TWO_PROCESSES)


def test_backend_is_gloo_unless_the_run_uses_cuda():
    assert distributed.choose_backend("cpu") == "gloo"
    expected = "nccl" if torch.cuda.is_available() else "gloo"
    assert distributed.choose_backend(None) == expected
    assert distributed.choose_backend("cuda:0") == expected


def test_device_is_picked_by_local_rank():
    assert distributed.choose_device("cuda", TWO_PROCESSES) == torch.device("cuda", 1)
    assert distributed.choose_device("cuda:0", TWO_PROCESSES) == torch.device("cuda", 0)
    assert distributed.choose_device("cuda", DistributedInfo()) == torch.device("cuda")
    assert distributed.choose_device("cpu", TWO_PROCESSES) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert distributed.choose_device(None, TWO_PROCESSES) == torch.device("cpu")


def test_a_user_process_group_of_one_is_used_and_left_alive(
    single_environment, tmp_path, make_model, make_loader, make_params
):
    # A group the user created is theirs: the trainer neither wraps a 1-process run nor destroys it.
    store = torch.distributed.HashStore()
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        result = Trainer("user_group", ckpt_root_dir=str(tmp_path)).train(make_model(), make_params(), make_loader())
        assert result.epochs_run == 1
        assert torch.distributed.is_initialized()
    finally:
        torch.distributed.destroy_process_group()


def test_a_torch_without_distributed_under_torchrun_is_an_error(torchrun_environment, monkeypatch):
    # Some torch builds (e.g. for mobile) lack torch.distributed; the launch cannot be honoured.
    monkeypatch.setattr(torch.distributed, "is_available", lambda: False)
    with pytest.raises(
        RuntimeError, match=r"distributed: WORLD_SIZE is 2 but this torch build has no torch\.distributed"
    ):
        distributed.setup_distributed()
