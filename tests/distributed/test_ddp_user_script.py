"""A user script under torchrun (2 processes, Gloo): one schedule on every rank, rank-0 files,
results equal to one process over the same global batches, exact resume, clean failure."""

from __future__ import annotations

import importlib.util
import math

import ddp_job
import pytest
from torchrun_launch import JOB_SCRIPT, read_ranks, torchrun

EPOCHS = 4
# 2 ranks x micro-batches of 8 x batch_accumulate 2: global batches of 32, as one process with 32.
JOB_ARGS = ["--epochs", str(EPOCHS), "--batch-size", "8", "--accumulate", "2"]
STEPS_PER_EPOCH = ddp_job.NUM_TRAIN // 32  # 8


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """One torchrun launch: 4 epochs with checkpoints under a root directory named by the rank, then the
    same run stopped after 2 epochs and resumed to 4 by further trainings in the same processes."""
    out = tmp_path_factory.mktemp("two_process")
    job = [str(JOB_SCRIPT), "--out", str(out), *JOB_ARGS, "--ckpt-per-rank", "--progress", "--resume-check"]
    torchrun([*job, "--teardown-cycles", "10"]).check()
    return out, read_ranks(out)


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory):
    """The same global data in one process: one shard of everything, batches of 2 x 16."""
    out = tmp_path_factory.mktemp("single_process")
    return ddp_job.run(ddp_job.parse_args(["--out", str(out), "--epochs", str(EPOCHS), "--batch-size", "32"]))


def test_both_ranks_apply_the_same_lr_at_every_step(two_process_run):
    _, (rank0, rank1) = two_process_run
    assert rank0["world_size"] == rank1["world_size"] == 2
    # The clock comes from the sharded loader: 128 samples per rank / 8 = 16 batches, 8 optimizer steps.
    assert rank0["steps_per_epoch"] == rank1["steps_per_epoch"] == [STEPS_PER_EPOCH]
    assert rank0["total_steps"] == rank1["total_steps"] == [EPOCHS * STEPS_PER_EPOCH]
    # CosineLRScheduler after a 4-step LinearBatchLRWarmup (docs/lr_schedules.md), on that clock:
    # warmup from lr0 / (W + 1), then lr0 * r + (lr0 - lr0 * r) * (1 + cos(pi * t / T)) / 2.
    lr0, ratio, warmup, total = 0.1, 0.1, 4, EPOCHS * STEPS_PER_EPOCH
    start = lr0 / (warmup + 1)
    expected = [start + (lr0 - start) * k / warmup for k in range(warmup)]
    expected += [
        lr0 * ratio + (lr0 - lr0 * ratio) * 0.5 * (1 + math.cos(math.pi * (k - warmup) / (total - warmup)))
        for k in range(warmup, total)
    ]
    assert [step for step, _ in rank0["lrs"]] == list(range(total))
    assert [lr for _, lr in rank0["lrs"]] == pytest.approx(expected, rel=1e-12)
    assert rank1["lrs"] == rank0["lrs"]  # exactly


def test_ranks_read_disjoint_shards_reshuffled_every_epoch(two_process_run, single_process_run):
    _, (rank0, rank1) = two_process_run
    for epoch in range(EPOCHS):
        assert len(rank0["first_steps"][epoch]) == len(rank1["first_steps"][epoch]) == 16
        assert not set(rank0["first_steps"][epoch]) & set(rank1["first_steps"][epoch])
        # Together the ranks' first optimizer step reads the single process's first batch.
        together = sorted(rank0["first_steps"][epoch] + rank1["first_steps"][epoch])
        assert together == sorted(single_process_run["first_steps"][epoch])
    # DistributedSampler.set_epoch each epoch: a new order every epoch.
    assert len({tuple(step) for step in rank0["first_steps"]}) == EPOCHS


def test_metrics_and_weights_equal_a_single_process_run(two_process_run, single_process_run):
    _, (rank0, rank1) = two_process_run
    assert rank0["weights"] == rank1["weights"]  # DDP keeps the replicas identical
    assert rank0["valid_metrics"] == rank1["valid_metrics"]  # reduced over ranks: the same everywhere
    assert rank0["best_metric"] == rank1["best_metric"] == single_process_run["best_metric"]
    assert [row[1] for row in rank0["lrs"]] == [row[1] for row in single_process_run["lrs"]]
    assert len(rank0["valid_metrics"]) == EPOCHS
    for distributed, single in zip(rank0["valid_metrics"], single_process_run["valid_metrics"]):
        assert distributed["Accuracy"] == single["Accuracy"]  # the whole valid set, 64 items
        assert distributed["loss"] == pytest.approx(single["loss"], rel=1e-5)
    # Averaging the gradients of two half batches differs from one full batch by rounding only.
    assert max(abs(a - b) for a, b in zip(rank0["weights"], single_process_run["weights"])) < 1e-5


def test_only_rank_zero_writes_checkpoints_logs_and_progress(two_process_run):
    out, _ = two_process_run
    run_dir = out / "ckpt_rank0" / "job"
    # TensorBoard events are written by default when the package is installed (the dev extra has it).
    tensorboard = ["tensorboard"] if importlib.util.find_spec("tensorboard") else []
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "ckpt_best.pth",
        "ckpt_latest.pth",
        "metrics.csv",
        "steps.csv",
        *tensorboard,
    ]
    assert not (out / "ckpt_rank1").exists()  # rank 1's Trainer had its own root directory and wrote nothing
    assert sorted(path.name for path in (out / "ckpt_resume" / "job").iterdir()) == sorted(
        path.name for path in run_dir.iterdir()
    )
    steps = (run_dir / "steps.csv").read_text().splitlines()
    assert len(steps) == 1 + EPOCHS * STEPS_PER_EPOCH
    rank0_stderr = (out / "stderr_rank0.txt").read_text()
    rank1_stderr = (out / "stderr_rank1.txt").read_text()
    assert f"epoch {EPOCHS}/{EPOCHS} | train loss" in rank0_stderr
    assert "epoch" not in rank1_stderr


def test_resume_under_torchrun_follows_the_uninterrupted_trajectory(two_process_run):
    _, ranks = two_process_run
    uninterrupted = ranks[0]
    for record in ranks:
        resumed = record["resumed"]
        assert resumed["epochs_run"] == [2, 2]  # rank 0 asked to stop after epoch 2: both ranks stopped
        assert resumed["lrs"] == uninterrupted["lrs"]
        assert resumed["valid_metrics"] == uninterrupted["valid_metrics"]
        assert resumed["weights"] == uninterrupted["weights"]
        # Three trainings in one process, each with its own process group, destroyed at the end;
        # then 10 bare setup/teardown cycles that would deadlock if teardown left DDP's reducer alive.
        assert record["process_group_initialized"] is False
        assert record["teardown_cycles"] == 10


def test_an_exception_on_one_rank_ends_every_rank(tmp_path):
    # Rank 1 raises in the middle of epoch 1 while rank 0 waits for it in DDP's gradient all-reduce.
    job = [str(JOB_SCRIPT), "--out", str(tmp_path), "--fail-on-rank", "1", "--plain-loader", "--no-shard"]
    launch = torchrun(job, timeout=60)
    assert launch.returncode != 0
    assert "RuntimeError: boom on rank 1" in launch.stderr
    assert launch.seconds < 60
    # With shard_loaders off, loaders without a DistributedSampler are read whole by every rank: each
    # rank warns, saying how to fix it.
    warning = "train_loader: distributed run with 2 processes, but the loader has no DistributedSampler"
    assert launch.stderr.count(warning) == 2
    assert "trainer.distributed.build_loader(dataset, batch_size, shuffle)" in launch.stderr
    assert not (tmp_path / "rank0.json").exists()
