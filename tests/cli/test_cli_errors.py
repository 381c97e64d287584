"""Exit codes and error lines of the command line: bad input 2 (one line, no traceback), a failed run 1
(one line), a crash 1 (with its traceback), Ctrl-C 130 (says where the last complete checkpoint is);
``--debug`` / PHASETRAIN_DEBUG=1 add the traceback. The first two as real processes (``python -m
trainer``), the others through ``main()`` in this process (a process start costs seconds)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainer.cli import main

pytest.importorskip("sklearn")

QUICK = [
    "training_hyperparams.max_epochs=2",
    "training_hyperparams.max_train_batches=3",
    "training_hyperparams.max_valid_batches=1",
    "training_hyperparams.plots=false",
    "training_hyperparams.tensorboard=false",
    "training_hyperparams.silent_mode=true",
]

HELPERS = """
import torch
from callbacks import Callback
from registry import register_callback


@register_callback("CliTestNaNLoss")
class NaNLoss(Callback):
    def on_train_batch_loss_end(self, context):
        if context.epoch == 1 and context.batch_idx == 1:
            context.loss = context.loss * float("nan")


@register_callback("CliTestCrash")
class Crash(Callback):
    def on_train_batch_end(self, context):
        if context.batch_idx == 1:
            context.no_such_field.append(1)


@register_callback("CliTestValueError")
class RaiseValueError(Callback):
    def on_train_batch_end(self, context):
        raise ValueError(f"raised by a callback in epoch {context.epoch}")


@register_callback("CliTestCtrlC")
class CtrlC(Callback):
    def on_train_loader_start(self, context):
        if context.epoch == 1:
            raise KeyboardInterrupt
"""


def run(tmp_path: Path, *args: str, debug_env: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PHASETRAIN_DEBUG", None)
    if debug_env:
        env["PHASETRAIN_DEBUG"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def helpers_file(tmp_path_factory) -> Path:
    """One file for the module: a process imports a module name once."""
    path = tmp_path_factory.mktemp("helpers") / "cli_test_helpers.py"
    path.write_text(HELPERS)
    return path


def with_callback(helpers: Path, name: str) -> list[str]:
    return [*QUICK, f"imports=[{helpers}]", f"training_hyperparams.phase_callbacks=[{name}]"]


def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path):
    done = run(tmp_path, "train", "digits_cosine", "training_hyperparams.max_epoch=3")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: training_params: unknown key 'max_epoch': ")
    assert "Did you mean 'max_epochs'?" in lines[0]
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_adds_the_traceback_to_bad_input(tmp_path, capsys, monkeypatch, how):
    argv = ["train", "digits_cosine", f"ckpt_root_dir={tmp_path}", "experiment_name=../escape"]
    if how == "flag":
        argv.insert(1, "--debug")
    else:
        monkeypatch.setenv("PHASETRAIN_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.count("must be a single path component") == 2  # the traceback's last line and the error line
    assert err.splitlines()[-1].startswith("error: ValueError: recipe 'digits_cosine': key 'experiment_name'")


def test_a_failed_run_exits_1_with_one_line(tmp_path, helpers_file):
    done = run(tmp_path, "train", "digits_cosine", *with_callback(helpers_file, "CliTestNaNLoss"))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: train loop: the training loss of epoch 1, batch 1 is nan (LR in force ")
    assert "every checkpoint on disk is as it was before epoch 1" in lines[0]


def test_a_crash_during_training_keeps_its_traceback_and_exits_1(tmp_path, helpers_file, capsys, monkeypatch):
    monkeypatch.delenv("PHASETRAIN_DEBUG", raising=False)
    assert (
        main(["train", "digits_cosine", f"ckpt_root_dir={tmp_path}", *with_callback(helpers_file, "CliTestCrash")]) == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "context.no_such_field.append(1)" in err
    assert err.splitlines()[-1] == "error: AttributeError: 'PhaseContext' object has no attribute 'no_such_field'"


def test_a_value_error_during_training_is_a_crash_not_bad_input(tmp_path, helpers_file, capsys, monkeypatch):
    monkeypatch.delenv("PHASETRAIN_DEBUG", raising=False)
    argv = ["train", "digits_cosine", f"ckpt_root_dir={tmp_path}", *with_callback(helpers_file, "CliTestValueError")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1] == "error: ValueError: raised by a callback in epoch 0"


def test_ctrl_c_exits_130_and_names_the_last_complete_checkpoint(tmp_path, helpers_file, capsys):
    assert (
        main(["train", "digits_cosine", f"ckpt_root_dir={tmp_path}", *with_callback(helpers_file, "CliTestCtrlC")])
        == 130
    )
    checkpoint = tmp_path / "digits_cosine" / "ckpt_latest.pth"
    err = capsys.readouterr().err
    assert (
        f"Interrupted in epoch 1; the last complete checkpoint is {checkpoint} (resume: true continues from it)." in err
    )
    assert checkpoint.is_file()
