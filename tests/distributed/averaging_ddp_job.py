"""Trained under torchrun by test_ddp_averaging.py: EMA and SWA on a BatchNorm model, 2 ranks.

Each rank saves ``<out>/rank<R>.pth``: the EMA weights it validated with at the last epoch (read at the
first validation batch, where the EMA callback has swapped them into the net), and its SWA metrics.

Run: ``python -m torch.distributed.run --nproc_per_node=2 tests/distributed/averaging_ddp_job.py --out DIR``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from callbacks import Callback
from callbacks.checkpoint import unwrap_model
from trainer import Trainer, distributed

EPOCHS = 3


class ValidatedWeights(Callback):
    """The net's weights at the first validation batch of every epoch (the EMA's, with ema on)."""

    def __init__(self) -> None:
        self.weights: dict[str, torch.Tensor] = {}

    def on_validation_batch_start(self, context) -> None:
        if context.batch_idx == 0:
            self.weights = {key: value.clone() for key, value in unwrap_model(context.net).state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(192, 8, generator=generator)
    labels = (features[:, 0] > 0).long() + 2 * (features[:, 1] > 0).long()
    train_set, valid_set = TensorDataset(features[:128], labels[:128]), TensorDataset(features[128:], labels[128:])
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    recorder = ValidatedWeights()
    params = {
        "max_epochs": EPOCHS,
        "initial_lr": 0.1,
        "optimizer": "SGD",
        "loss": "CrossEntropyLoss",
        "silent_mode": True,
        "ema": True,
        "ema_params": {"decay": 0.9, "decay_type": "threshold"},
        "swa": {"start_epoch": 1, "swa_lr": 0.05, "anneal_epochs": 1},
        "phase_callbacks": [recorder],
    }
    train_loader = distributed.build_loader(train_set, batch_size=16, shuffle=True, seed=0)
    valid_loader = distributed.build_loader(valid_set, batch_size=16, shuffle=False, seed=0)
    result = Trainer("averaging_ddp", ckpt_root_dir=args.out).train(net, params, train_loader, valid_loader)
    rank = int(os.environ.get("RANK", "0"))  # the trainer has torn the process group down by now
    torch.save(
        {"ema": recorder.weights, "swa_metrics": result.swa_metrics, "valid_metrics": result.valid_metrics},
        Path(args.out) / f"rank{rank}.pth",
    )


if __name__ == "__main__":
    main()
