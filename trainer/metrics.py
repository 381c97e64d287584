"""The metrics of one pass over a loader: the mean loss over batches (and ranks) and each metric's value."""

from __future__ import annotations

from typing import Any

import torch

from trainer import distributed


def epoch_metrics(
    loss_sum: float | torch.Tensor, num_batches: int, metrics: dict[str, Any], device, info
) -> dict[str, Any]:
    """Mean loss over batches (and ranks, when ``info`` is distributed) plus each metric's value; resets the metrics.

    Args:
        loss_sum: the sum of the batch losses: a 0-d tensor on the device, or a float read on the host.
        num_batches: how many batches the sum holds (on this rank).
        metrics: {name: torchmetrics Metric} updated during the pass.
        device: the loop's device (where ranks reduce the sums).
        info: the run's ``distributed.DistributedInfo`` (None: one process).

    Returns:
        {"loss": mean, metric name: value}; NaN loss for a pass without batches.
    """
    if isinstance(loss_sum, torch.Tensor):
        totals = torch.stack([loss_sum, torch.tensor(float(num_batches), device=device)])
    else:
        dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64  # MPS has no float64
        totals = torch.tensor([loss_sum, float(num_batches)], dtype=dtype, device=device)
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
