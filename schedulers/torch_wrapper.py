"""Wrapping torch.optim.lr_scheduler classes as phase callbacks. STUB: being written."""

from __future__ import annotations

from typing import Any

from callbacks import Callback, PhaseContext


def build_torch_lr_callbacks(training_params: Any, net, optimizer, train_loader_len: int, steps_per_epoch: int) -> list[Callback]:
    """The callback of a mapping ``lr_mode``."""
    raise NotImplementedError("mapping lr_mode is being implemented")


def load_torch_scheduler_state(stateful_callbacks: list[Callback], checkpoint: dict[str, Any], path: str) -> None:
    """Load torch scheduler state; error on a mismatch."""
    for callback in stateful_callbacks:
        callback.load_state_dict(checkpoint[callback.checkpoint_key])


def warn_on_resumed_lr_mismatch(callbacks: list[Callback], context: PhaseContext, checkpoint: dict[str, Any]) -> None:
    """Warn when the restored schedule's LR differs from the saved optimizer LR."""
