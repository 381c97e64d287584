"""EMA and SWA under torchrun (2 processes, Gloo): every rank validates with the same EMA weights,
which are the ones rank 0 saves, and the SWA metrics are reduced over both ranks."""

from __future__ import annotations

import torch
from torchrun_launch import JOB_DIR, torchrun


def test_every_rank_holds_the_same_ema(tmp_path):
    torchrun([str(JOB_DIR / "averaging_ddp_job.py"), "--out", str(tmp_path)]).check()
    rank0, rank1 = (torch.load(tmp_path / f"rank{rank}.pth", weights_only=True) for rank in (0, 1))
    assert rank0["ema"].keys() == rank1["ema"].keys()
    for key, value in rank0["ema"].items():
        assert torch.equal(value, rank1["ema"][key]), key
    saved = torch.load(tmp_path / "averaging_ddp" / "ckpt_latest.pth", weights_only=True)["ema_net"]
    for key, value in saved.items():
        assert torch.equal(value, rank0["ema"][key]), key
    assert rank0["swa_metrics"] == rank1["swa_metrics"] and set(rank0["swa_metrics"]) == {"loss"}
    assert (tmp_path / "averaging_ddp" / "ckpt_swa.pth").is_file()
