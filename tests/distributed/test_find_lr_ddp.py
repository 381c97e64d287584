"""find_lr under torchrun (2 processes, Gloo): the same LRs and losses on both ranks, the losses of
one process over the same global batches, and the weights put back on every rank."""

from __future__ import annotations

import find_lr_job
import pytest
from torchrun_launch import JOB_DIR, read_ranks, torchrun


def test_every_rank_sweeps_the_same_lrs_and_averages_the_losses(tmp_path):
    out = tmp_path / "ddp"
    # 2 ranks x micro-batches of 8 x batch_accumulate 2 = global steps of 32 samples, as one process with 16 x 2.
    torchrun([str(JOB_DIR / "find_lr_job.py"), "--out", str(out), "--batch-size", "8"]).check()
    rank0, rank1 = read_ranks(out, "find_lr_rank{}.json")
    single = find_lr_job.run(find_lr_job.parse_args(["--out", str(tmp_path / "single"), "--batch-size", "16"]))

    assert rank0["world_size"] == rank1["world_size"] == 2 and single["world_size"] == 1
    assert rank0["lrs"] == rank1["lrs"] == single["lrs"][: len(rank0["lrs"])]
    assert rank0["losses"] == rank1["losses"] and rank0["raw_losses"] == rank1["raw_losses"]  # all-reduced: exact
    assert len(rank0["lrs"]) == len(single["lrs"]) >= 20
    # The mean over ranks of each shard's mean loss is the loss of the global batch, up to rounding.
    assert rank0["raw_losses"] == pytest.approx(single["raw_losses"], rel=1e-5)
    assert rank0["suggestions"] == rank1["suggestions"]
    for record in (rank0, rank1, single):
        assert record["weights_after"] == record["weights_before"]
