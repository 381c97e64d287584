"""Shared fixtures: factories of a tiny seeded MLP, a seeded TensorDataset, DataLoaders and training params.

Tests run the real Trainer on these (CPU, a few dozen samples), with checkpoints under tmp_path.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

# pytest puts tests/ on sys.path, where tests/trainer, tests/callbacks, ... would be found as namespace
# packages named like the real ones; with an editable install under plain `pytest` (no cwd on sys.path)
# nothing else on sys.path holds the real packages. The repository root makes them win.
REPO_ROOT = str(Path(__file__).resolve().parents[1])
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

# The helpers live in tiny_fixtures.py: test modules import them from there, because another
# conftest.py under tests/ can take the module name "conftest" during a full run.
# Tiny models run fastest on one thread; with two, torch's thread pool dominates each step and a
# busy machine turns milliseconds into seconds.
torch.set_num_threads(1)

from tiny_fixtures import base_params, tiny_dataset, tiny_loader, tiny_mlp  # noqa: E402, F401


@pytest.fixture
def make_model():
    """Factory fixture: ``make_model(seed=0, ...)`` -> a fresh tiny MLP."""
    return tiny_mlp


@pytest.fixture
def make_dataset():
    """Factory fixture: ``make_dataset(num_samples=24, seed=0, ...)`` -> a TensorDataset."""
    return tiny_dataset


@pytest.fixture
def make_loader():
    """Factory fixture: ``make_loader(num_batches=3, batch_size=4, seed=0, shuffle=False)`` -> a DataLoader."""
    return tiny_loader


@pytest.fixture
def make_params():
    """Factory fixture: ``make_params(**overrides)`` -> complete training params."""
    return base_params
