"""Built-in data sets: the real 8x8 handwritten digits (from scikit-learn) and a synthetic set."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from registry import register_dataset


@register_dataset("digits")
def digits(valid_fraction: float = 0.2, seed: int = 0) -> tuple[TensorDataset, TensorDataset]:
    """The 1,797 8x8 handwritten digits shipped inside scikit-learn, split reproducibly.

    Images are scaled to [0, 1] with shape (1, 8, 8); the split is a seeded permutation.

    Args:
        valid_fraction: share of the samples held out for validation.
        seed: seed of the split.

    Returns:
        (train set, valid set).
    """
    if not 0 < valid_fraction < 1:
        raise ValueError(f"dataset digits: valid_fraction must be in (0, 1), got {valid_fraction!r}.")
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "dataset digits needs scikit-learn: pip install 'phasetrain[examples]' (or pip install scikit-learn)."
        ) from error
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    num_valid = int(round(len(labels) * valid_fraction))
    valid_idx, train_idx = order[:num_valid], order[num_valid:]
    return TensorDataset(images[train_idx], labels[train_idx]), TensorDataset(images[valid_idx], labels[valid_idx])


@register_dataset("synthetic")
def synthetic(
    num_samples: int = 512, num_features: int = 16, num_classes: int = 4, valid_fraction: float = 0.25, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """A seeded, linearly separable-ish classification set of Gaussian features.

    Returns:
        (train set, valid set).
    """
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_classes, num_features, generator=generator) * 2.0
    labels = torch.randint(0, num_classes, (num_samples,), generator=generator)
    features = centers[labels] + torch.randn(num_samples, num_features, generator=generator)
    num_valid = int(round(num_samples * valid_fraction))
    return (
        TensorDataset(features[num_valid:], labels[num_valid:]),
        TensorDataset(features[:num_valid], labels[:num_valid]),
    )
