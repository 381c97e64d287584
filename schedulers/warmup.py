"""LR warmups (LinearEpochLRWarmup, LinearBatchLRWarmup). STUB: being written."""

from __future__ import annotations

from typing import Any

from callbacks import Callback


def warmup_param_names(training_params: dict[str, Any]) -> set[str]:
    """Named constructor parameters of the chosen warmup class (through its MRO)."""
    return set()


def build_warmup_callbacks(training_params: Any, net, optimizer, train_loader_len: int, steps_per_epoch: int) -> list[Callback]:
    """The warmup callback, if a warmup is configured."""
    return []
