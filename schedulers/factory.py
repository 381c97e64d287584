"""Build the LR callbacks that ``training_params`` ask for (placeholder: constant LR only)."""

from __future__ import annotations

from typing import Any

import torch

from callbacks import Callback, PhaseContext


def lr_param_names(training_params: dict[str, Any]) -> set[str]:
    """Training-param keys accepted besides the trainer's own: named parameters of the LR classes."""
    return set()


def build_lr_callbacks(
    training_params: Any, net: torch.nn.Module, optimizer: torch.optim.Optimizer, train_loader_len: int, steps_per_epoch: int
) -> list[Callback]:
    """The warmup and schedule callbacks, in the order they run (before user callbacks)."""
    if training_params.lr_mode is not None:
        raise NotImplementedError("lr_mode is not implemented yet")
    return []


def load_scheduler_states(stateful_callbacks: list[Callback], checkpoint: dict[str, Any], path: str) -> None:
    """Load each stateful callback's state from ``checkpoint``."""
    for callback in stateful_callbacks:
        callback.load_state_dict(checkpoint[callback.checkpoint_key])


def warn_on_resumed_lr_mismatch(callbacks: list[Callback], context: PhaseContext, checkpoint: dict[str, Any]) -> None:
    """Warn when the restored schedule's LR differs from the LR saved in the optimizer state."""
