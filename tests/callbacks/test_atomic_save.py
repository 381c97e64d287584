"""A process that dies while writing a checkpoint leaves the previous one intact and loadable.

Real processes on the real file system: one crashes inside torch.save after writing half of the
file, one is SIGKILLed while a write is in flight.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from callbacks import atomic_save, load_checkpoint
from trainer import Trainer

REPO_ROOT = Path(__file__).resolve().parents[2]
CRASH_EXIT_CODE = 17

CRASHING_RUN = textwrap.dedent(
    """
    import io, os, sys
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from trainer import Trainer

    real_save = torch.save
    calls = []

    def save_half_then_die(obj, handle, *args, **kwargs):
        calls.append(1)
        if len(calls) < 2:
            return real_save(obj, handle, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        handle.flush()
        os._exit({exit_code})

    torch.save = save_half_then_die
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(12, 4), torch.randint(0, 3, (12,))), batch_size=4)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    params = {{"max_epochs": 3, "initial_lr": 0.1, "loss": "CrossEntropyLoss", "silent_mode": True}}
    Trainer("crash", ckpt_root_dir=sys.argv[1]).train(net, params, loader)
    """
).format(exit_code=CRASH_EXIT_CODE)

WRITE_FOREVER = textwrap.dedent(
    """
    import sys
    import torch
    from callbacks import atomic_save

    path = sys.argv[1]
    version = 0
    while True:
        version += 1
        atomic_save({"version": version, "payload": torch.full((2_000_000,), float(version))}, path)
        print(version, flush=True)
    """
)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}


def test_crash_inside_save_leaves_previous_checkpoint(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, str(tmp_path)], env=_env(), capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == CRASH_EXIT_CODE, completed.stderr
    run_dir = tmp_path / "crash"
    leftovers = [path for path in run_dir.iterdir() if ".pth" in path.name and path.name != "ckpt_latest.pth"]
    assert [path.name.split("-")[0] for path in leftovers] == [".ckpt_latest.pth.tmp"]  # the half-written file
    with pytest.raises(Exception):  # noqa: B017 - the half file is really broken
        torch.load(leftovers[0], weights_only=True)
    checkpoint = load_checkpoint(run_dir / "ckpt_latest.pth")
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (1, 3)

    # The intact checkpoint resumes: epochs 1 and 2 run and the stale temporary file does not matter.
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(12, 4), torch.randint(0, 3, (12,))), batch_size=4
    )
    params = {"max_epochs": 3, "initial_lr": 0.1, "loss": "CrossEntropyLoss", "silent_mode": True, "resume": True}
    result = Trainer("crash", ckpt_root_dir=str(tmp_path)).train(net, params, loader)
    assert (result.epochs_run, result.global_step) == (2, 9)
    assert load_checkpoint(run_dir / "ckpt_latest.pth")["epoch"] == 3


def test_sigkill_during_a_write_leaves_a_complete_file(tmp_path):
    path = tmp_path / "ckpt_latest.pth"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITE_FOREVER, str(path)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "1"
        deadline = time.monotonic() + 60
        while not any(name.name.startswith(".ckpt_latest.pth.tmp") for name in tmp_path.iterdir()):
            assert time.monotonic() < deadline, "the writer never started a second write"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    saved = torch.load(path, weights_only=True)
    assert saved["version"] >= 1
    assert torch.equal(saved["payload"], torch.full((2_000_000,), float(saved["version"])))


def test_atomic_save_replaces_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "ckpt.pth"
    atomic_save({"a": torch.tensor([1.0])}, path)
    atomic_save({"a": torch.tensor([2.0])}, path)
    assert [entry.name for entry in path.parent.iterdir()] == ["ckpt.pth"]
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.tensor([2.0]))


def test_failed_save_keeps_the_old_file_and_cleans_up(tmp_path):
    path = tmp_path / "ckpt.pth"
    atomic_save({"a": torch.tensor([1.0])}, path)
    with pytest.raises(Exception):  # noqa: B017 - whatever torch.save raises for an unpicklable object
        atomic_save({"a": lambda: None}, path)
    assert [entry.name for entry in tmp_path.iterdir()] == ["ckpt.pth"]
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.tensor([1.0]))
