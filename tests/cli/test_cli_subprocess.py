"""``python -m trainer`` as a real process (the in-process tests cover the rest: startup costs seconds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

QUICK = [
    "training_hyperparams.max_epochs=2",
    "training_hyperparams.max_train_batches=3",
    "training_hyperparams.max_valid_batches=1",
    "training_hyperparams.plots=false",
]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )


def test_python_m_trainer_trains_a_shipped_recipe_from_any_directory(tmp_path):
    done = run(tmp_path, "train", "digits_cosine", *QUICK)
    assert done.returncode == 0, done.stderr
    assert "best Accuracy: " in done.stdout
    assert "epoch 2/2 | train loss" in done.stderr  # the progress summary of each epoch
    run_dir = tmp_path / "checkpoints" / "digits_cosine"  # ckpt_root_dir is relative to the current directory
    assert {"ckpt_latest.pth", "ckpt_best.pth", "recipe.yaml", "metrics.csv", "steps.csv"} <= {
        p.name for p in run_dir.iterdir()
    }
