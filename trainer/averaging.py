"""The callbacks of snapshot_ensemble, swa and ema, built from the training params (docs/averaging.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from callbacks import Callback
from callbacks.ema import ModelEMA
from callbacks.snapshots import SnapshotSaver, snapshot_epochs_of
from callbacks.swa import SWALRSchedule, SWAModel
from trainer.metrics import epoch_metrics


def build_averaging_callbacks(
    params: Any,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_callbacks: list[Callback],
    ckpt_dir: str,
    evaluate: Callable[[torch.nn.Module], dict[str, Any]] | None,
) -> list[Callback]:
    """EMA, SWA and snapshot callbacks, in the order the trainer runs them (after the user's callbacks,
    before logs and checkpoints): the EMA swaps its weights out of the net before anything saves it, and
    SWALR writes the LR after every schedule has.

    Raises:
        ValueError: snapshot_ensemble without warm restarts in the schedule and without snapshot_epochs.
    """
    callbacks: list[Callback] = []
    if params.ema:
        ema = params.ema_params
        callbacks.append(ModelEMA(net, ema["decay"], ema["decay_type"], ema["beta"]))
    if params.swa is not None:
        callbacks += swa_lr_callbacks(params, optimizer)
        callbacks.append(SWAModel(net, params.swa["start_epoch"], ckpt_dir, evaluate))
    if params.snapshot_ensemble:
        epochs = snapshot_epochs_of(lr_callbacks, params.max_epochs, params.snapshot_epochs, params.lr_mode)
        callbacks.append(SnapshotSaver(ckpt_dir, epochs))
    return callbacks


def swa_lr_callbacks(params: Any, optimizer: torch.optim.Optimizer) -> list[Callback]:
    """Only the LR part of ``swa`` (for the schedule preview)."""
    if params.swa is None:
        return []
    swa = params.swa
    return [
        SWALRSchedule(
            optimizer, swa["start_epoch"], swa["swa_lr"], swa.get("anneal_epochs"), swa.get("anneal_strategy")
        )
    ]


@torch.no_grad()
def evaluate_module(
    module: torch.nn.Module,
    loader: Any,
    criterion: torch.nn.Module,
    metrics: dict[str, Any],
    device: torch.device,
    max_batches: int | None = None,
    info: Any = None,
) -> dict[str, Any]:
    """{"loss": mean batch loss, metric: value} of ``module`` on ``loader``, as the trainer validates
    (summed over ranks under DDP); the metrics are reset afterwards.
    """
    was_training = module.training
    module.eval()
    num_batches = len(loader) if max_batches is None else min(len(loader), max_batches)
    loss_sum = torch.zeros((), device=device)
    for batch_idx, (inputs, target) in enumerate(loader):
        if batch_idx >= num_batches:
            break
        inputs, target = inputs.to(device), target.to(device)
        preds = module(inputs)
        loss_sum += criterion(preds, target).float()
        for metric in metrics.values():
            metric.update(preds, target)
    module.train(was_training)
    return epoch_metrics(loss_sum, num_batches, metrics, device, info)
