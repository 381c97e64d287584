"""LR warmups (LinearEpochLRWarmup, LinearBatchLRWarmup) and how ``warmup_mode`` picks one.

``warmup_mode`` names a class registered with ``@register_lr_warmup``. Left unset it is inferred:
LinearBatchLRWarmup when ``lr_warmup_steps > 0``, LinearEpochLRWarmup when ``lr_warmup_epochs > 0``,
no warmup otherwise. The warmup callback runs before the schedule's, and on the first step after
the warmup it writes lr0, so a run without ``lr_mode`` continues at a constant lr0.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import torch

from callbacks import Callback, Phase, PhaseContext
from registry import LR_WARMUPS, did_you_mean, register_lr_warmup, unknown_name_message
from schedulers import schedule_math
from schedulers.base import LRCallbackBase
from schedulers.lr_support import (
    check_schedule_fits,
    checked_lr_class,
    construct_lr_callback,
    constructor_param_names,
    run_clock,
    write_group_lrs,
)

WHERE = "training_params: key 'warmup_mode'"


def _is_positive_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0


def warmup_class(training_params: Mapping[str, Any]) -> type[LRCallbackBase] | None:
    """The warmup class that ``training_params`` ask for, or None for no warmup.

    Raises:
        ValueError: unknown warmup_mode, or a warmup_mode that contradicts the warmup length keys.
    """
    mode = training_params.get("warmup_mode")
    epochs, steps = training_params.get("lr_warmup_epochs"), training_params.get("lr_warmup_steps")
    if mode is None:
        if _is_positive_number(steps):
            return LinearBatchLRWarmup
        return LinearEpochLRWarmup if _is_positive_number(epochs) else None
    if mode not in LR_WARMUPS:
        raise ValueError(unknown_name_message(WHERE, mode, LR_WARMUPS))
    cls = checked_lr_class(LR_WARMUPS.get(mode), mode, WHERE)
    if issubclass(cls, LinearEpochLRWarmup) and _is_positive_number(steps):
        raise ValueError(
            f"{WHERE}: {mode!r} warms up over 'lr_warmup_epochs', but 'lr_warmup_steps' is {steps!r}; for a per-step "
            "warmup use warmup_mode 'LinearBatchLRWarmup' (or leave warmup_mode unset)."
        )
    if issubclass(cls, LinearBatchLRWarmup) and _is_positive_number(epochs):
        raise ValueError(
            f"{WHERE}: {mode!r} warms up over 'lr_warmup_steps', but 'lr_warmup_epochs' is {epochs!r}; for a per-epoch "
            "warmup use warmup_mode 'LinearEpochLRWarmup' (or leave warmup_mode unset)."
        )
    return cls


def warmup_param_names(training_params: dict[str, Any]) -> set[str]:
    """Named constructor parameters of the chosen warmup class (through its MRO).

    Called while training params are validated, before their types are checked: a warmup_mode
    that is not a string is left to the type check.

    Raises:
        ValueError: unknown warmup_mode, or one that contradicts the warmup length keys.
    """
    mode = training_params.get("warmup_mode")
    if mode is not None and not isinstance(mode, str):
        return set()
    cls = warmup_class(training_params)
    return constructor_param_names(cls) if cls is not None else set()


def build_warmup_callbacks(
    training_params: Any,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader_len: int,
    steps_per_epoch: int,
) -> list[Callback]:
    """The warmup callback, if a warmup is configured.

    A built-in warmup with no length (both lr_warmup_epochs and lr_warmup_steps 0) adds nothing;
    a user's registered warmup named by warmup_mode is always built.

    Raises:
        ValueError, TypeError: a bad warmup_mode or warmup_initial_lr, or warmup plus cooldown not
            shorter than training.
    """
    cls = warmup_class(training_params)
    if cls is None:
        return []
    if issubclass(cls, LinearWarmup) and not (training_params.lr_warmup_epochs or training_params.lr_warmup_steps):
        return []
    name = training_params.warmup_mode or cls.__name__
    callback = construct_lr_callback(cls, name, WHERE, training_params, net, train_loader_len)
    if isinstance(callback, LinearWarmup):
        callback.check_group_names([group["name"] for group in optimizer.param_groups])
    return [callback]


class LinearWarmup(LRCallbackBase):
    """Base of the linear warmups: the clock, and the start LR of each param group.

    Args:
        phase: where the warmup writes.
        warmup_initial_lr: the LR at the start of the warmup: a number for every group, a mapping
            {group name: lr}, or None for ``lr0 / (n + 1)``. A frozen group (lr0 = 0) stays at 0.
    """

    def __init__(self, phase: Phase | str, warmup_initial_lr: float | Mapping[str, float] | None = None, **kwargs: Any):
        super().__init__(phase, **kwargs)
        self.clock = run_clock(self.training_params, self.train_loader_len)
        check_schedule_fits(self.clock, self.training_params)
        self.warmup_initial_lr = self._checked_start(warmup_initial_lr)

    def _checked_start(self, value: Any) -> float | dict[str, float] | None:
        entries = value.items() if isinstance(value, Mapping) else [(None, value)]
        for name, lr in entries:
            key = "warmup_initial_lr" if name is None else f"warmup_initial_lr[{name!r}]"
            if lr is None and name is None:
                continue
            if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
                raise TypeError(
                    f"{WHERE}: training param {key} must be a number >= 0 or a mapping {{group name: lr}}, "
                    f"got {type(lr).__name__} {lr!r}."
                )
            if lr < 0:
                raise ValueError(f"{WHERE}: training param {key} must be >= 0, got {lr!r}.")
        return dict(value) if isinstance(value, Mapping) else value

    def check_group_names(self, group_names: list[str]) -> None:
        """A mapping warmup_initial_lr must name exactly the param groups (the initial_lr keys).

        Raises:
            ValueError: a group without a start LR, or a name that is no group.
        """
        if not isinstance(self.warmup_initial_lr, Mapping):
            return
        names = list(dict.fromkeys(group_names))
        missing = [name for name in names if name not in self.warmup_initial_lr]
        extra = [name for name in self.warmup_initial_lr if name not in names]
        if missing or extra:
            bad = extra[0] if extra else None
            hint = did_you_mean(bad, names) if bad is not None else ""
            raise ValueError(
                f"{WHERE}: training param warmup_initial_lr {self.warmup_initial_lr} must have one entry per param "
                f"group {names} (the initial_lr keys); missing {missing}, unknown {extra}.{hint}"
            )

    def start_lr(self, group: dict) -> float | None:
        """The configured start of ``group``'s warmup, or None for the default lr0 / (n + 1)."""
        if isinstance(self.warmup_initial_lr, Mapping):
            return self.warmup_initial_lr[group["name"]]
        return self.warmup_initial_lr

    def group_lr(self, group: dict, context: PhaseContext) -> float:
        lr0 = group["initial_lr"]
        return 0.0 if lr0 == 0 else self.warmup_lr(lr0, self.start_lr(group), context)

    def warmup_lr(self, lr0: float, start: float | None, context: PhaseContext) -> float:
        """The warmup's value for a group with initial_lr ``lr0`` and configured start ``start``."""
        raise NotImplementedError


@register_lr_warmup("LinearEpochLRWarmup")
class LinearEpochLRWarmup(LinearWarmup):
    """For e < lr_warmup_epochs: ``start + (lr0 - start) * e / lr_warmup_epochs``; lr0 at e = lr_warmup_epochs.

    Written at TRAIN_EPOCH_START.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(Phase.TRAIN_EPOCH_START, **kwargs)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        return context.epoch <= self.clock.warmup_epochs

    def perform_scheduling(self, context: PhaseContext) -> None:
        write_group_lrs(self, context, lambda group: self.group_lr(group, context), None)

    def warmup_lr(self, lr0: float, start: float | None, context: PhaseContext) -> float:
        return schedule_math.linear_epoch_warmup_lr(lr0, self.clock, context.epoch, start)


@register_lr_warmup("LinearBatchLRWarmup")
class LinearBatchLRWarmup(LinearWarmup):
    """For k < lr_warmup_steps: ``start + (lr0 - start) * k / lr_warmup_steps``; lr0 at k = lr_warmup_steps.

    Written at TRAIN_BATCH_START of the batch that opens optimizer step k. The warmup counts
    optimizer steps, not micro-batches, and may last longer than an epoch.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(Phase.TRAIN_BATCH_START, **kwargs)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        return context.opens_step and context.global_step <= self.clock.warmup_steps

    def perform_scheduling(self, context: PhaseContext) -> None:
        write_group_lrs(self, context, lambda group: self.group_lr(group, context), context.batch_idx)

    def warmup_lr(self, lr0: float, start: float | None, context: PhaseContext) -> float:
        return schedule_math.linear_batch_warmup_lr(lr0, self.clock, context.global_step, start)


SUPERGRADIENTS_ALIASES = {"linear_epoch_step": LinearEpochLRWarmup, "linear_batch_step": LinearBatchLRWarmup}
"""SuperGradients' older warmup_mode names, accepted so its recipes port."""

for _alias, _cls in SUPERGRADIENTS_ALIASES.items():
    register_lr_warmup(_alias)(_cls)
