"""A training job that the kill test SIGKILLs in the middle of an epoch (and runs in-process to resume).

OneCycleLR per optimizer step with momentum cycling, 6 epochs of 5 steps, shuffled data, validation
every epoch. With ``--hang-at-epoch E`` the job writes ``--marker`` at batch 2 of epoch E (after the
checkpoint of epoch E - 1 is on disk) and then sleeps until it is killed.

Run: ``python tests/trainer/kill_resume_job.py --root DIR --hang-at-epoch 3 --marker FILE``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks import Callback
from trainer import Trainer

EPOCHS = 6
HANG_AT_BATCH = 2


def dataset(num_samples: int, seed: int) -> TensorDataset:
    """Seeded Gaussian blobs, 4 features, 3 classes."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(3, 4, generator=generator) * 2.0
    labels = torch.randint(0, 3, (num_samples,), generator=generator)
    return TensorDataset(centers[labels] + torch.randn(num_samples, 4, generator=generator), labels)


def model() -> nn.Module:
    """A 2-layer MLP with fixed initial weights (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


class StepLog(Callback):
    """Records {global step: (LR, momentum)} right before each optimizer step."""

    def __init__(self):
        self.values: dict[int, tuple[float, float]] = {}

    def on_train_batch_gradient_step_start(self, context):
        group = context.optimizer.param_groups[0]
        self.values[context.global_step] = (group["lr"], group["momentum"])


class HangMidEpoch(Callback):
    """Writes ``marker`` at batch HANG_AT_BATCH of ``epoch``, then sleeps until killed."""

    def __init__(self, epoch: int, marker: str):
        self.epoch = epoch
        self.marker = Path(marker)

    def on_train_batch_end(self, context):
        if context.epoch == self.epoch and context.batch_idx == HANG_AT_BATCH:
            self.marker.write_text(f"epoch {context.epoch} batch {context.batch_idx} step {context.global_step}\n")
            time.sleep(600)


def train(
    root: str, name: str = "job", resume: bool = False, hang_at_epoch: int | None = None, marker: str | None = None
):
    """Train (or resume) the job; returns (the StepLog values, the trained model)."""
    log = StepLog()
    callbacks = [log] if hang_at_epoch is None else [log, HangMidEpoch(hang_at_epoch, marker)]
    net = model()
    params = {
        "max_epochs": EPOCHS,
        "initial_lr": 0.1,
        "optimizer": "SGD",
        "optimizer_params": {"momentum": 0.9, "weight_decay": 1e-4},
        "loss": "CrossEntropyLoss",
        "lr_mode": {"OneCycleLR": {"max_lr": 0.4, "total_steps": "auto", "phase": "TRAIN_BATCH_STEP"}},
        "silent_mode": True,
        "phase_callbacks": callbacks,
        "resume": resume,
    }
    train_loader = DataLoader(dataset(40, seed=2), batch_size=8, shuffle=True)
    valid_loader = DataLoader(dataset(16, seed=3), batch_size=8)
    Trainer(name, ckpt_root_dir=root).train(net, params, train_loader, valid_loader)
    return log.values, net


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True, help="ckpt_root_dir")
    parser.add_argument("--name", default="job", help="experiment name")
    parser.add_argument("--hang-at-epoch", type=int, default=None)
    parser.add_argument("--marker", default=None, help="file written right before hanging")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # the same as the test process, so the arithmetic is the same
    train(args.root, args.name, hang_at_epoch=args.hang_at_epoch, marker=args.marker)


if __name__ == "__main__":
    main()
