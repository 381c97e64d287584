"""A training process killed with SIGKILL in the middle of an epoch resumes from its last checkpoint
and from there follows the uninterrupted trajectory: the same LR and momentum at every optimizer
step and bitwise-identical final weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kill_resume_job as job
import pytest
import torch

from callbacks import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
HANG_AT_EPOCH = 3
STEPS_PER_EPOCH = 5


@pytest.fixture
def one_torch_thread():
    """The job sets one thread too: the same arithmetic in both processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def wait_for(path: Path, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(
                f"the job exited with {process.returncode} before reaching the marker:\n{log.read_text()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"the job did not reach {path} within {timeout} s")
        time.sleep(0.05)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")
def test_sigkilled_run_resumes_on_the_uninterrupted_trajectory(tmp_path, one_torch_thread):
    marker = tmp_path / "hanging"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable,
        str(Path(job.__file__)),
        "--root",
        str(tmp_path),
        "--hang-at-epoch",
        str(HANG_AT_EPOCH),
        "--marker",
        str(marker),
    ]
    log = tmp_path / "job.log"
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(marker, process, log, timeout=180)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (
        marker.read_text()
        == f"epoch {HANG_AT_EPOCH} batch {job.HANG_AT_BATCH} step {HANG_AT_EPOCH * STEPS_PER_EPOCH + job.HANG_AT_BATCH + 1}\n"
    )
    checkpoint = load_checkpoint(tmp_path / "job" / "ckpt_latest.pth")
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (HANG_AT_EPOCH, HANG_AT_EPOCH * STEPS_PER_EPOCH)
    assert checkpoint["torch_scheduler_state_dict"]["state"]["last_epoch"] == HANG_AT_EPOCH * STEPS_PER_EPOCH

    resumed_values, resumed_net = job.train(str(tmp_path), "job", resume=True)
    full_values, full_net = job.train(str(tmp_path), "uninterrupted")

    resume_step = HANG_AT_EPOCH * STEPS_PER_EPOCH
    assert sorted(resumed_values) == list(range(resume_step, job.EPOCHS * STEPS_PER_EPOCH))
    assert resumed_values == {step: value for step, value in full_values.items() if step >= resume_step}
    assert len({lr for lr, _ in resumed_values.values()}) == len(resumed_values)  # the LR moves every step
    full_state, resumed_state = full_net.state_dict(), resumed_net.state_dict()
    assert all(torch.equal(full_state[key], resumed_state[key]) for key in full_state)
