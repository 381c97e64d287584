"""docs/distributed.md: the plain-loader script runs under torchrun as shown, and what it says about
``DistributedSampler(dataset)`` before the process group exists holds."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler, TensorDataset
from torchrun_launch import REPO_ROOT, torchrun

DOC = REPO_ROOT / "docs" / "distributed.md"


def doc_script(first_line: str) -> str:
    """The ```python block of the doc that starts with ``first_line``."""
    (code,) = [
        block for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if block.startswith(first_line)
    ]
    return code


def test_the_plain_loader_script_is_sharded_under_torchrun(tmp_path: Path):
    pytest.importorskip("sklearn")
    from trainer.data import digits

    script = tmp_path / "train_plain.py"
    script.write_text(doc_script("# train_plain.py\n"))
    launch = torchrun([str(script)], cwd=tmp_path, timeout=180).check()
    train_set, _ = digits(valid_fraction=0.2, seed=0)
    steps = 2 * math.ceil(math.ceil(len(train_set) / 2) / 32)  # 2 epochs over half the data each
    lines = launch.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == lines[1]  # both ranks print the same reduced result
    assert lines[0].startswith(f"steps {steps} accuracy ")
    assert (
        launch.stderr.count("distributed: train_loader, valid_loader rebuilt with a DistributedSampler (seed 42)") == 1
    )
    assert "no DistributedSampler" not in launch.stderr
    assert (tmp_path / "checkpoints" / "digits_plain_ddp" / "ckpt_best.pth").is_file()


def test_distributed_sampler_before_the_process_group_raises_torchs_own_error():
    assert not torch.distributed.is_initialized()
    message = "Default process group has not been initialized, please make sure to call init_process_group."
    assert message in DOC.read_text().replace("\n", " ")
    with pytest.raises(ValueError, match=re.escape(message)):
        DistributedSampler(TensorDataset(torch.zeros(4)))
