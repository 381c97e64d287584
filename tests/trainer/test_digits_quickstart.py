"""The Python-API quick start (examples/train_digits.py): SmallCNN on the real digits reaches 96%."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from callbacks import load_checkpoint

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_digits.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("phasetrain_example_train_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_example_reaches_96_percent_and_writes_checkpoints(tmp_path):
    pytest.importorskip("sklearn")
    example = _load_example()
    result = example.train_digits(ckpt_root_dir=str(tmp_path), max_epochs=3, silent_mode=True)
    assert result.metric_to_watch == "Accuracy"
    assert result.best_metric >= 0.96
    run_dir = tmp_path / "train_digits"
    assert result.ckpt_dir == str(run_dir)
    latest = load_checkpoint(run_dir / "ckpt_latest.pth")
    best = load_checkpoint(run_dir / "ckpt_best.pth")
    assert (latest["epoch"], latest["global_step"]) == (3, 3 * 23)  # 1,437 training images in batches of 64
    assert best["best_metric"] == result.best_metric == best["valid_metrics"]["Accuracy"]


def test_digits_example_command_line(tmp_path, capsys):
    pytest.importorskip("sklearn")
    example = _load_example()
    example.main(["--epochs", "1", "--ckpt-root-dir", str(tmp_path), "--silent"])
    printed = capsys.readouterr().out
    assert printed.startswith("best validation accuracy 0.")
    assert printed.rstrip().endswith(f"checkpoints in {tmp_path / 'train_digits'}")
