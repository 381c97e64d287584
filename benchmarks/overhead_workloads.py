"""The workloads of ``benchmarks/overhead.py`` and what its variants share.

Imported only inside a worker process, after the worker has timed ``import torch, torchmetrics``
(this module imports nothing else heavy).

Every variant trains the same seeded model on the same seeded data in the same order, with SGD
(momentum 0.9) under a per-step schedule, and runs a validation pass with a torchmetrics accuracy
after every epoch. The steady-state window runs from the start of the second epoch's training to
the end of the last validation.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torchmetrics
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SEED = 0
NUM_CLASSES = 10
MAX_LR = 0.1
MOMENTUM = 0.9


@dataclass(frozen=True)
class Workload:
    """One benchmark workload: a model builder and the sizes of its seeded data."""

    name: str
    build_model: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    batch_size: int
    train_batches: int
    valid_batches: int
    epochs: int

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch (one per batch: no accumulation)."""
        return self.train_batches


def mlp() -> nn.Module:
    """Workload A's model: an MLP 32 -> 64 -> 10."""
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, NUM_CLASSES))


def cnn() -> nn.Module:
    """Workload B's model: two 3x3 convolutions with max pooling on 1x28x28, then a linear head."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, NUM_CLASSES),
    )


def workload(name: str, quick: bool) -> Workload:
    """Workload ``name`` ("A" or "B"), reduced with ``quick`` (still two epochs: the first is excluded)."""
    if name == "A":
        # 64k samples in batches of 64: 1000 steps per epoch.
        return Workload("A", mlp, (32,), 64, 100 if quick else 1000, 10 if quick else 100, 2 if quick else 3)
    if name == "B":
        return Workload("B", cnn, (1, 28, 28), 64, 10 if quick else 200, 3 if quick else 20, 2 if quick else 3)
    raise ValueError(f"overhead: workload {name!r} is unknown; choose from A, B.")


@dataclass
class Setup:
    """What every variant of one run shares: settings, data loaders and the freshly seeded model."""

    workload: Workload
    device: torch.device
    amp: bool
    sync_check: bool
    train_loader: DataLoader
    valid_loader: DataLoader
    net: nn.Module

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run."""
        return self.workload.epochs * self.workload.steps_per_epoch

    @property
    def timed_steps(self) -> int:
        """Optimizer steps in the steady-state window (every epoch but the first)."""
        return (self.workload.epochs - 1) * self.workload.steps_per_epoch


def make_setup(spec: Workload, device: str, amp: bool, sync_check: bool) -> Setup:
    """Seeded data (labels from a fixed random linear teacher), loaders and model."""
    generator = torch.Generator().manual_seed(SEED)
    num_train, num_valid = spec.train_batches * spec.batch_size, spec.valid_batches * spec.batch_size
    inputs = torch.randn(num_train + num_valid, *spec.input_shape, generator=generator)
    teacher = torch.randn(inputs[0].numel(), NUM_CLASSES, generator=generator)
    labels = (inputs.flatten(1) @ teacher).argmax(dim=1)
    torch_device = torch.device(device)
    pin = torch_device.type == "cuda"
    train_set = TensorDataset(inputs[:num_train], labels[:num_train])
    valid_set = TensorDataset(inputs[num_train:], labels[num_train:])
    train_loader = DataLoader(
        train_set,
        batch_size=spec.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(SEED),
        pin_memory=pin,
    )
    valid_loader = DataLoader(valid_set, batch_size=spec.batch_size, pin_memory=pin)
    torch.manual_seed(SEED)
    return Setup(spec, torch_device, amp, sync_check, train_loader, valid_loader, spec.build_model())


def accuracy() -> torchmetrics.Metric:
    """The validation metric of every variant."""
    return torchmetrics.Accuracy(task="multiclass", num_classes=NUM_CLASSES)


def sgd(net: nn.Module) -> torch.optim.Optimizer:
    """The optimizer of every variant (OneCycleLR overwrites the LR before the first step)."""
    return torch.optim.SGD(net.parameters(), lr=MAX_LR, momentum=MOMENTUM)


def one_cycle(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.OneCycleLR:
    """The per-step schedule of the raw and Lightning variants."""
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=MAX_LR, total_steps=total_steps)


def autocast_dtype(device: torch.device) -> torch.dtype:
    """float16 on CUDA, bfloat16 on CPU (what phasetrain's mixed_precision uses)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


class SyncCounter:
    """Counts CUDA sync warnings (``torch.cuda.set_sync_debug_mode("warn")``) by training batch.

    The variant's loop calls ``at_batch(batch_idx)`` at the start of each timed training batch and
    ``at_batch(None)`` when it leaves training (validation, epoch ends). Batches for which one of
    ``logging_batches`` is true are logging intervals (the progress bar reading the loss, the step
    log moving its losses to the host); syncs there are expected.

    Args:
        logging_batches: predicates on the batch index within the epoch.
    """

    def __init__(self, logging_batches: list[Callable[[int], bool]]):
        self.logging_batches = logging_batches
        self.batch_idx: int | None = None
        self.by_batch: dict[int, int] = {}
        self.outside_training = 0
        self.sites: dict[str, int] = {}
        self._catcher = warnings.catch_warnings(record=True)
        self._records: list[warnings.WarningMessage] = []

    def at_batch(self, batch_idx: int | None) -> None:
        """Attribute the warnings recorded so far, then start counting for ``batch_idx``."""
        self._collect()
        self.batch_idx = batch_idx

    def start(self) -> None:
        """Turn the sync debug mode on (call at the start of the steady-state window)."""
        self._records = self._catcher.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> dict[str, Any]:
        """Turn it off and return the counts."""
        self._collect()
        torch.cuda.set_sync_debug_mode("default")
        self._catcher.__exit__(None, None, None)
        outside_logging = [
            batch for batch in self.by_batch if not any(is_logging(batch) for is_logging in self.logging_batches)
        ]
        top_sites = sorted(self.sites.items(), key=lambda item: -item[1])[:5]
        return {
            "sync_warnings_in_timed_batches": sum(self.by_batch.values()),
            "sync_batches": len(self.by_batch),
            "sync_batches_outside_logging": len(outside_logging),
            "sync_warnings_outside_training": self.outside_training,
            "sync_sites": [f"{site} x{count}" for site, count in top_sites],
        }

    def _collect(self) -> None:
        for record in self._records:
            if "synchroniz" not in str(record.message):
                continue
            site = f"{record.filename}:{record.lineno}"
            self.sites[site] = self.sites.get(site, 0) + 1
            if self.batch_idx is None:
                self.outside_training += 1
            else:
                self.by_batch[self.batch_idx] = self.by_batch.get(self.batch_idx, 0) + 1
        self._records.clear()


def new_sync_counter(setup: Setup, logging_batches: list[Callable[[int], bool]]) -> SyncCounter | None:
    """A SyncCounter when the sync check is on (CUDA only), else None."""
    if not setup.sync_check:
        return None
    if setup.device.type != "cuda":
        raise ValueError(f"overhead: --sync-check needs --device cuda, got {setup.device}.")
    return SyncCounter(logging_batches)


def scratch_dir() -> str:
    """A fresh directory for a run's files (phasetrain's run directory, steps.csv), removed at exit."""
    path = tempfile.mkdtemp(prefix="phasetrain-bench-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def now() -> float:
    """The clock of the steady-state window."""
    return time.perf_counter()
