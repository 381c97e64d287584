"""Plain DataLoaders under torchrun (2 processes, Gloo): the trainer shards them with a seeded
DistributedSampler, says so once on rank 0, and every rank applies the same LR at every step."""

from __future__ import annotations

import ddp_job
import pytest
from torch.utils.data import DistributedSampler
from torchrun_launch import JOB_SCRIPT, read_ranks, torchrun

EPOCHS = 2
BATCH = 8
STEPS_PER_EPOCH = ddp_job.NUM_TRAIN // 2 // BATCH  # 128 items per rank in batches of 8: 16
SEED = 7  # the job's training param seed: the sampler's seed


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain_loaders")
    job = [str(JOB_SCRIPT), "--out", str(out), "--epochs", str(EPOCHS), "--batch-size", str(BATCH)]
    launch = torchrun([*job, "--plain-loader", "--progress", "--ckpt-per-rank"]).check()
    return out, read_ranks(out), launch


def expected_first_batch(rank: int, epoch: int) -> list[float]:
    """What rank ``rank`` of 2 must read first in ``epoch``: DistributedSampler(shuffle, seed 7)."""
    train_set, _ = ddp_job.datasets()
    sampler = DistributedSampler(train_set, num_replicas=2, rank=rank, shuffle=True, seed=SEED)
    sampler.set_epoch(epoch)
    indices = list(sampler)[:BATCH]
    return train_set.tensors[0][indices, 0].tolist()


def test_each_rank_reads_its_seeded_shard_reshuffled_every_epoch(plain_run):
    _, (rank0, rank1), _ = plain_run
    assert rank0["steps_per_epoch"] == rank1["steps_per_epoch"] == [STEPS_PER_EPOCH]
    for epoch in range(EPOCHS):
        assert rank0["first_steps"][epoch] == expected_first_batch(0, epoch)
        assert rank1["first_steps"][epoch] == expected_first_batch(1, epoch)
    assert rank0["first_steps"][0] != rank0["first_steps"][1]


def test_every_rank_applies_the_same_lr_and_ends_with_the_same_weights(plain_run):
    _, (rank0, rank1), _ = plain_run
    assert [step for step, _ in rank0["lrs"]] == list(range(EPOCHS * STEPS_PER_EPOCH))
    assert rank1["lrs"] == rank0["lrs"]
    assert rank1["weights"] == rank0["weights"]
    assert rank1["valid_metrics"] == rank0["valid_metrics"]


def test_rank_zero_says_once_that_it_sharded_and_nobody_warns(plain_run):
    out, _, launch = plain_run
    message = "distributed: train_loader, valid_loader rebuilt with a DistributedSampler (seed 7) over 2 processes"
    assert (out / "stderr_rank0.txt").read_text().count(message) == 1
    assert message not in (out / "stderr_rank1.txt").read_text()
    assert "no DistributedSampler" not in launch.stderr + (out / "stderr_rank0.txt").read_text()
    steps = (out / "ckpt_rank0" / "job" / "steps.csv").read_text().splitlines()
    assert len(steps) == 1 + EPOCHS * STEPS_PER_EPOCH
