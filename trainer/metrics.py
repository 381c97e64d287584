"""The metrics of one pass over a loader: the mean loss over batches (and ranks) and each metric's value."""

from __future__ import annotations

from typing import Any

import torch

from trainer import distributed


def epoch_metrics(loss_sum: torch.Tensor, num_batches: int, metrics: dict[str, Any], device, info) -> dict[str, Any]:
    """Mean loss over batches (and ranks, when ``info`` is distributed) plus each metric's value; resets the metrics.

    Args:
        loss_sum: the sum of the batch losses, on the device.
        num_batches: how many batches the sum holds (on this rank).
        metrics: {name: torchmetrics Metric} updated during the pass.
        device: where ``loss_sum`` lives.
        info: the run's ``distributed.DistributedInfo`` (None: one process).

    Returns:
        {"loss": mean, metric name: value}; NaN loss for a pass without batches.
    """
    totals = torch.stack([loss_sum, torch.tensor(float(num_batches), device=device)])
    if info is not None:
        distributed.all_reduce_sum(totals, info)
    results: dict[str, Any] = {"loss": (totals[0] / totals[1]).item() if num_batches else float("nan")}
    for name, metric in metrics.items():
        value = metric.compute()
        if isinstance(value, torch.Tensor):
            # Per-class metrics (average=None) become lists of floats: plain data for checkpoints and logs.
            value = value.item() if value.numel() == 1 else value.tolist()
        results[name] = value
        metric.reset()
    return results
