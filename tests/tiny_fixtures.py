"""Tiny seeded test fixtures: a 2-layer MLP, a classification TensorDataset, DataLoaders, training params.

Import them in tests with ``from tiny_fixtures import tiny_mlp, tiny_loader, base_params`` (tests/ is on
sys.path through tests/conftest.py); tests/conftest.py also offers them as factory fixtures.
"""

from __future__ import annotations

from typing import Any

import torch
import torchmetrics
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

IN_FEATURES = 4
NUM_CLASSES = 3


def tiny_mlp(
    seed: int = 0, in_features: int = IN_FEATURES, hidden: int = 8, num_classes: int = NUM_CLASSES
) -> nn.Module:
    """A 2-layer MLP whose initial weights depend only on ``seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def tiny_dataset(
    num_samples: int = 24, seed: int = 0, in_features: int = IN_FEATURES, num_classes: int = NUM_CLASSES
) -> TensorDataset:
    """A seeded classification set: Gaussian features around one center per class."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_classes, in_features, generator=generator) * 2.0
    labels = torch.randint(0, num_classes, (num_samples,), generator=generator)
    features = centers[labels] + torch.randn(num_samples, in_features, generator=generator)
    return TensorDataset(features, labels)


def tiny_loader(num_batches: int = 3, batch_size: int = 4, seed: int = 0, shuffle: bool = False) -> DataLoader:
    """A DataLoader of exactly ``num_batches`` batches of ``batch_size`` samples."""
    return DataLoader(tiny_dataset(num_batches * batch_size, seed=seed), batch_size=batch_size, shuffle=shuffle)


def base_params(**overrides: Any) -> dict[str, Any]:
    """The smallest complete training params (SGD, cross entropy, silent), with ``overrides`` applied."""
    params = {"max_epochs": 1, "initial_lr": 0.1, "optimizer": "SGD", "loss": "CrossEntropyLoss", "silent_mode": True}
    params.update(overrides)
    return params


class ScriptedScore(torchmetrics.Metric):
    """A validation 'metric' whose value at the n-th validation is ``values[n]``."""

    higher_is_better = True

    def __init__(self, values):
        super().__init__()
        self.values = list(values)
        self.add_state("batches", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds, target):
        self.batches += 1

    def compute(self):
        return torch.tensor(self.values.pop(0))
