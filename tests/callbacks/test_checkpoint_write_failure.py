"""A checkpoint write that fails half-way (a real ``OSError`` from the kernel: the file-size limit
RLIMIT_FSIZE, as a full disk would stop it) leaves the previous file byte-identical, removes the
temporary file and names the path and the cause."""

from __future__ import annotations

import contextlib
import resource
import signal

import pytest
import torch
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from callbacks import atomic_save
from callbacks.errors import CheckpointWriteError
from trainer import Trainer


@contextlib.contextmanager
def file_size_limit(max_bytes: int):
    """Writes past ``max_bytes`` in any file fail with EFBIG ("File too large") while inside."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the error, not the signal's kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)


def test_atomic_save_that_fails_half_way_keeps_the_old_file(tmp_path):
    path = tmp_path / "ckpt.pth"
    atomic_save({"weights": torch.zeros(20_000)}, path)
    before = path.read_bytes()
    with (
        file_size_limit(len(before) // 2),
        pytest.raises(
            CheckpointWriteError,
            match=rf"checkpoint: writing '{path}' failed \(OSError: File too large\); the previous file there is unchanged "
            r"and the temporary file was removed\.",
        ) as caught,
    ):
        atomic_save({"weights": torch.ones(20_000)}, path)
    assert isinstance(caught.value, OSError) and caught.value.errno == 27  # EFBIG
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["ckpt.pth"]


def test_a_run_whose_checkpoint_write_fails_keeps_the_previous_checkpoint(tmp_path):
    params = base_params(max_epochs=1, tensorboard=False, optimizer_params={"momentum": 0.9})
    model = tiny_mlp(hidden=256)
    Trainer("full", ckpt_root_dir=str(tmp_path)).train(model, params, tiny_loader(), tiny_loader(1))
    run_dir = tmp_path / "full"
    before = {entry.name: entry.read_bytes() for entry in run_dir.glob("*.pth")}
    assert sorted(before) == ["ckpt_best.pth", "ckpt_latest.pth"]
    size = len(before["ckpt_latest.pth"])
    assert size > 8_000  # the CSV logs stay far below half of it

    with (
        file_size_limit(size // 2),
        pytest.raises(
            CheckpointWriteError,
            match=rf"checkpoint: writing '{run_dir / 'ckpt_latest.pth'}' failed \(OSError: File too large\)",
        ),
    ):
        Trainer("full", ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(hidden=256), {**params, "max_epochs": 2, "resume": True}, tiny_loader(), tiny_loader(1)
        )
    assert {entry.name: entry.read_bytes() for entry in run_dir.glob("*.pth")} == before
    assert [entry.name for entry in run_dir.iterdir() if ".tmp" in entry.name] == []
