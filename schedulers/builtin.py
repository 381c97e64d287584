"""The built-in LR schedules (StepLRScheduler, CosineLRScheduler, ...). STUB: being written."""

from __future__ import annotations

from typing import Any

from callbacks import Callback


def lr_class_param_names(lr_mode: str) -> set[str]:
    """Named constructor parameters of the LR class registered as ``lr_mode`` (through its MRO)."""
    return set()


def build_builtin_lr_callbacks(training_params: Any, net, optimizer, train_loader_len: int, steps_per_epoch: int) -> list[Callback]:
    """The callback of a string ``lr_mode``."""
    raise NotImplementedError("string lr_mode is being implemented")
