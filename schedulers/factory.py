"""Build the LR callbacks that ``training_params`` ask for, and restore their state on resume.

``lr_mode`` as a string names an ``LRCallbackBase`` subclass (schedulers.builtin and the user's
own); as a mapping ``{TorchSchedulerName: {...}}`` it wraps a torch scheduler
(schedulers.torch_wrapper). A warmup callback (schedulers.warmup) runs before either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from callbacks import Callback, PhaseContext
from schedulers import builtin, param_scheduler, resume_continue, resume_lr, torch_wrapper, warmup


def lr_param_names(training_params: dict[str, Any]) -> set[str]:
    """Training-param keys accepted besides the trainer's own: the named constructor parameters
    of the chosen LR class and warmup class, through their class hierarchies."""
    names = warmup.warmup_param_names(training_params)
    if isinstance(training_params.get("lr_mode"), str):
        names |= builtin.lr_class_param_names(training_params["lr_mode"])
    return names


def build_lr_callbacks(
    training_params: Any,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader_len: int,
    steps_per_epoch: int,
) -> list[Callback]:
    """The warmup and schedule callbacks, in the order they run (before the user's callbacks).

    Raises:
        ValueError, TypeError: a bad lr_mode, warmup or schedule parameter.
    """
    callbacks = warmup.build_warmup_callbacks(training_params, net, optimizer, train_loader_len, steps_per_epoch)
    lr_mode = training_params.lr_mode
    if isinstance(lr_mode, Mapping):
        callbacks += torch_wrapper.build_torch_lr_callbacks(
            training_params, net, optimizer, train_loader_len, steps_per_epoch
        )
    elif lr_mode is not None:
        callbacks += builtin.build_builtin_lr_callbacks(
            training_params, net, optimizer, train_loader_len, steps_per_epoch
        )
    callbacks += param_scheduler.build_param_scheduler_callbacks(training_params, optimizer, steps_per_epoch)
    return callbacks


def load_scheduler_states(stateful_callbacks: list[Callback], checkpoint: dict[str, Any], path: str) -> None:
    """Load each stateful LR callback's state from ``checkpoint``.

    Raises:
        RuntimeError: the checkpoint's scheduler state does not match the current lr_mode.
    """
    stateful_callbacks = resume_continue.unwrapped(stateful_callbacks)  # resume_schedule: continue wraps them
    param_scheduler.check_checkpoint_has_param_scheduler(stateful_callbacks, checkpoint, path)
    torch_wrapper.load_torch_scheduler_state(stateful_callbacks, checkpoint, path)


def warn_on_resumed_lr_mismatch(callbacks: list[Callback], context: PhaseContext, checkpoint: dict[str, Any]) -> None:
    """Apply ``resume_schedule`` where the restored schedule's values differ from those saved in the checkpoint:
    warn, refuse (``error``: ``ValueError``), or nothing to compare (``continue`` runs the checkpoint's own).
    """
    if context.training_params.get("resume_schedule") == "continue":
        return
    torch_wrapper.warn_on_resumed_lr_mismatch(callbacks, context, checkpoint)
    resume_lr.under_resume_policy(
        lambda: param_scheduler.warn_on_resumed_jumps(callbacks, context, checkpoint), context
    )
