"""Draw docs/img/lr_*.png: the per-step LR of each built-in schedule, warmup and cooldown.

The curves come from the real LR callbacks (``schedulers.build_lr_callbacks``), fired on the loop's
clock with a stand-in context that holds only the clock fields, so the plots show what training
writes into the optimizer. Run from the repository root: ``python docs/plot_schedules.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

import schedulers
from callbacks import CallbackList, Phase
from trainer.builders import build_optimizer
from trainer.params import resolve_training_params

IMG_DIR = Path(__file__).resolve().parent / "img"
BATCHES_PER_EPOCH = 20
MAX_EPOCHS = 10


def inverse_sqrt(initial_lr: float, epoch: int, iter: int, max_epoch: int, iters_per_epoch: int) -> float:
    """The FunctionLRScheduler example: lr0 / sqrt(1 + epochs elapsed)."""
    return initial_lr / math.sqrt(1 + epoch + iter / iters_per_epoch)


def simulate(params: dict[str, Any], num_batches: int = BATCHES_PER_EPOCH) -> list[tuple[float, ...]]:
    """The LR of each param group at every optimizer step of a run with ``params``, without training."""
    resolved = resolve_training_params(
        {"max_epochs": MAX_EPOCHS, "initial_lr": 0.1, "loss": "CrossEntropyLoss", **params}, schedulers.lr_param_names
    )
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    optimizer = build_optimizer(net, resolved)
    accumulate = resolved.batch_accumulate
    steps = schedulers.steps_per_epoch(num_batches, resolved.max_train_batches, accumulate)
    callbacks = CallbackList(schedulers.build_lr_callbacks(resolved, net, optimizer, num_batches, steps))
    context = SimpleNamespace(
        optimizer=optimizer,
        net=net,
        training_params=resolved,
        epoch=0,
        batch_idx=0,
        global_step=0,
        opens_step=False,
        steps_per_epoch=steps,
        total_steps=resolved.max_epochs * steps,
        max_epochs=resolved.max_epochs,
    )
    lrs = []
    for epoch in range(resolved.max_epochs):
        context.epoch = epoch
        callbacks.fire(Phase.TRAIN_EPOCH_START, context)
        for batch_idx in range(num_batches):
            context.batch_idx, context.opens_step = batch_idx, batch_idx % accumulate == 0
            callbacks.fire(Phase.TRAIN_BATCH_START, context)
            if (batch_idx + 1) % accumulate == 0 or batch_idx + 1 == num_batches:
                lrs.append(tuple(group["lr"] for group in optimizer.param_groups))
                context.global_step += 1
    return lrs


FIGURES: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "lr_step": (
        "StepLRScheduler",
        {
            "lr_updates=[2, 5, 7], lr_decay_factor=0.3": {
                "lr_mode": "StepLRScheduler",
                "lr_updates": [2, 5, 7],
                "lr_decay_factor": 0.3,
            },
            "step_lr_update_freq=3, lr_decay_factor=0.5": {
                "lr_mode": "StepLRScheduler",
                "step_lr_update_freq": 3,
                "lr_decay_factor": 0.5,
            },
        },
    ),
    "lr_cosine": (
        "CosineLRScheduler",
        {
            "cosine_final_lr_ratio=0.01": {"lr_mode": "CosineLRScheduler"},
            "cosine_final_lr_ratio=0.3": {"lr_mode": "CosineLRScheduler", "cosine_final_lr_ratio": 0.3},
        },
    ),
    "lr_poly": (
        "PolyLRScheduler",
        {
            "poly_power=0.9": {"lr_mode": "PolyLRScheduler"},
            "poly_power=2": {"lr_mode": "PolyLRScheduler", "poly_power": 2},
        },
    ),
    "lr_exponential": (
        "ExponentialLRScheduler",
        {
            "lr_decay_factor=0.7": {"lr_mode": "ExponentialLRScheduler", "lr_decay_factor": 0.7},
            "lr_decay_factor=0.9": {"lr_mode": "ExponentialLRScheduler", "lr_decay_factor": 0.9},
        },
    ),
    "lr_function": (
        "FunctionLRScheduler",
        {
            "lr0 / sqrt(1 + epochs)": {"lr_mode": "FunctionLRScheduler", "lr_schedule_function": inverse_sqrt},
        },
    ),
    "lr_warmup": (
        "Warmups (lr_mode unset: constant lr0 after)",
        {
            "lr_warmup_epochs=3 (LinearEpochLRWarmup)": {"lr_warmup_epochs": 3},
            "lr_warmup_steps=50 (LinearBatchLRWarmup)": {"lr_warmup_steps": 50, "warmup_initial_lr": 0.0},
        },
    ),
    "lr_warmup_cooldown": (
        "CosineLRScheduler with warmup and cooldown",
        {
            "lr_warmup_epochs=2, lr_cooldown_epochs=2": {
                "lr_mode": "CosineLRScheduler",
                "lr_warmup_epochs": 2,
                "lr_cooldown_epochs": 2,
            },
            "lr_warmup_steps=30, lr_cooldown_epochs=2": {
                "lr_mode": "CosineLRScheduler",
                "lr_warmup_steps": 30,
                "lr_cooldown_epochs": 2,
            },
        },
    ),
    "lr_groups": (
        "PolyLRScheduler, 2 warmup epochs, initial_lr {'1': 0.02, 'default': 0.1}",
        {
            "group": {
                "lr_mode": "PolyLRScheduler",
                "initial_lr": {"1": 0.02, "default": 0.1},
                "lr_warmup_epochs": 2,
            },
        },
    ),
}
"""File name -> (title, {curve label: training params})."""


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG_DIR.mkdir(parents=True, exist_ok=True)
    steps = MAX_EPOCHS * BATCHES_PER_EPOCH
    for name, (title, curves) in FIGURES.items():
        figure, axes = plt.subplots(figsize=(7.5, 3.2), dpi=100)
        for label, params in curves.items():
            lrs = simulate(params)
            groups = list(zip(*lrs))
            if label == "group":
                for group_name, values in zip(["1", "default"], groups):
                    axes.plot(range(len(values)), values, drawstyle="steps-post", label=f"group {group_name!r}")
            else:
                axes.plot(range(len(groups[0])), groups[0], drawstyle="steps-post", label=label)
        for epoch in range(1, MAX_EPOCHS):
            axes.axvline(epoch * BATCHES_PER_EPOCH, color="0.9", linewidth=0.8, zorder=0)
        axes.set(title=title, xlabel=f"optimizer step k (S = {BATCHES_PER_EPOCH} steps per epoch)", ylabel="LR")
        axes.set_xlim(0, steps)
        axes.set_ylim(bottom=0)
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(IMG_DIR / f"{name}.png")
        plt.close(figure)
        print(IMG_DIR / f"{name}.png")


if __name__ == "__main__":
    main()
