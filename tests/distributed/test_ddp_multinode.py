"""Two "nodes" on localhost: ``torchrun --nnodes=2 --nproc_per_node=1`` twice, so that a worker's
``RANK`` (global) differs from its ``LOCAL_RANK`` (0 on both). The run completes, both ranks apply
the same LR at every step, only global rank 0 writes, and resume follows the uninterrupted run."""

from __future__ import annotations

import json

import ddp_job
import pytest
from torchrun_launch import JOB_SCRIPT, torchrun_nodes

EPOCHS = 4
STEPS_PER_EPOCH = ddp_job.NUM_TRAIN // 2 // 16  # per-rank batches of 16: 8 steps per epoch


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    out = tmp_path_factory.mktemp("two_nodes")
    job = [str(JOB_SCRIPT), "--out", str(out), "--epochs", str(EPOCHS), "--batch-size", "16"]
    launches = torchrun_nodes([*job, "--ckpt-per-rank", "--progress", "--resume-check"])
    for node, launch in enumerate(launches):
        assert launch.returncode == 0, f"node {node}:\n{launch.stdout}\n{launch.stderr}"
    return out, [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


def test_global_rank_differs_from_local_rank(two_nodes):
    _, (rank0, rank1) = two_nodes
    assert [(record["rank"], record["local_rank"], record["world_size"]) for record in (rank0, rank1)] == [
        (0, 0, 2),
        (1, 0, 2),
    ]


def test_both_nodes_apply_the_same_lr_at_every_step(two_nodes):
    _, (rank0, rank1) = two_nodes
    assert [step for step, _ in rank0["lrs"]] == list(range(EPOCHS * STEPS_PER_EPOCH))
    assert rank1["lrs"] == rank0["lrs"]
    assert rank1["weights"] == rank0["weights"]


def test_only_global_rank_zero_writes(two_nodes):
    out, _ = two_nodes
    # Rank 1 also has LOCAL_RANK 0: a trainer that took LOCAL_RANK for "rank zero" would write here.
    assert not (out / "ckpt_rank1").exists()
    run_dir = out / "ckpt_rank0" / "job"
    assert {"ckpt_latest.pth", "ckpt_best.pth", "metrics.csv", "steps.csv"} <= {path.name for path in run_dir.iterdir()}
    assert len((run_dir / "steps.csv").read_text().splitlines()) == 1 + EPOCHS * STEPS_PER_EPOCH
    assert f"epoch {EPOCHS}/{EPOCHS} | train loss" in (out / "stderr_rank0.txt").read_text()
    assert "epoch" not in (out / "stderr_rank1.txt").read_text()


def test_resume_across_nodes_follows_the_uninterrupted_run(two_nodes):
    _, ranks = two_nodes
    for record in ranks:
        resumed = record["resumed"]
        assert resumed["epochs_run"] == [2, 2]
        assert resumed["lrs"] == ranks[0]["lrs"]
        assert resumed["weights"] == ranks[0]["weights"]
