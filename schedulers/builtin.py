"""The built-in LR schedules (StepLRScheduler, CosineLRScheduler, ...) and how a string lr_mode is built.

Every built-in is an ``LRCallbackBase`` whose value comes from a pure function of the schedule
clock (schedulers.schedule_math), computed for each param group from that group's
``initial_lr``. Per-step schedules write at ``TRAIN_BATCH_START`` of the batch that opens
optimizer step k, so step k uses the value for k; StepLRScheduler writes at ``TRAIN_EPOCH_START``.
None of them acts during the warmup, and none keeps a counter: resuming needs no state.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch

from callbacks import Callback, Phase, PhaseContext
from registry import LR_SCHEDULERS, TORCH_LR_SCHEDULERS, register_lr_scheduler, resolve_callable, unknown_name_message
from schedulers import schedule_math
from schedulers.base import LRCallbackBase
from schedulers.lr_support import (
    check_number,
    check_schedule_fits,
    checked_lr_class,
    construct_lr_callback,
    constructor_param_names,
    run_clock,
    write_group_lrs,
)

WHERE = "training_params: key 'lr_mode'"

# ---------------------------------------------------------------------- a string lr_mode


def lr_class(lr_mode: str) -> type[LRCallbackBase]:
    """The ``LRCallbackBase`` subclass registered as ``lr_mode``.

    Raises:
        ValueError: unknown name; lists the registered names and the closest match.
        TypeError: the name is registered to something that is not an ``LRCallbackBase`` subclass.
    """
    if lr_mode not in LR_SCHEDULERS:
        hint = ""
        if lr_mode in TORCH_LR_SCHEDULERS:
            hint = f" {lr_mode!r} is a torch scheduler: give it as a mapping, lr_mode: {{{lr_mode}: {{...}}}}."
        raise ValueError(unknown_name_message(WHERE, lr_mode, LR_SCHEDULERS) + hint)
    return checked_lr_class(LR_SCHEDULERS.get(lr_mode), lr_mode, WHERE)


def lr_class_param_names(lr_mode: str) -> set[str]:
    """Named constructor parameters of the LR class registered as ``lr_mode`` (through its MRO).

    Raises:
        ValueError: unknown ``lr_mode``; lists the registered names and the closest match.
    """
    return constructor_param_names(lr_class(lr_mode))


def build_builtin_lr_callbacks(
    training_params: Any,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader_len: int,
    steps_per_epoch: int,
) -> list[Callback]:
    """The callback of a string ``lr_mode``.

    Raises:
        ValueError, TypeError: unknown lr_mode, or a bad schedule parameter.
    """
    lr_mode = training_params["lr_mode"]
    if not isinstance(lr_mode, str):
        raise TypeError(
            f"{WHERE}: must be a registered name, a mapping {{TorchSchedulerName: {{...}}}} or None, "
            f"got {type(lr_mode).__name__} {lr_mode!r}."
        )
    return [construct_lr_callback(lr_class(lr_mode), lr_mode, WHERE, training_params, net, train_loader_len)]


# ---------------------------------------------------------------------- the built-ins


class ClockLRSchedule(LRCallbackBase):
    """Base of the built-ins: holds the run's clock and checks that the main schedule has steps."""

    def __init__(self, phase: Phase | str, **kwargs: Any):
        super().__init__(phase, **kwargs)
        self.clock = run_clock(self.training_params, self.train_loader_len)
        check_schedule_fits(self.clock, self.training_params)
        self.where = f"lr_mode {type(self).__name__}"

    def lr_of(self, lr0: float, context: PhaseContext) -> float:
        """The LR of a group with initial_lr ``lr0`` at this point of the run."""
        raise NotImplementedError

    def perform_scheduling(self, context: PhaseContext) -> None:
        # Once per distinct initial_lr, not once per group: this runs at every optimizer step and groups
        # usually share their initial_lr (benchmarks/sched_micro.py: 100 groups).
        values: dict[float, float] = {}

        def value_of(group: dict) -> float:
            lr0 = group["initial_lr"]
            if lr0 not in values:
                values[lr0] = self.lr_of(lr0, context)
            return values[lr0]

        write_group_lrs(self, context, value_of, context.batch_idx)


class PerStepLRSchedule(ClockLRSchedule):
    """A schedule written at ``TRAIN_BATCH_START`` of each batch that opens an optimizer step."""

    def __init__(self, **kwargs: Any):
        super().__init__(Phase.TRAIN_BATCH_START, **kwargs)

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        return context.opens_step and not self.clock.in_warmup(context.global_step)


@register_lr_scheduler("StepLRScheduler")
class StepLRScheduler(ClockLRSchedule):
    """Epoch e uses ``lr0 * lr_decay_factor ** count(u in lr_updates with u < e)``; written at TRAIN_EPOCH_START.

    Args:
        lr_updates: epochs after which the LR decays (absolute epoch indices, warmup included).
        lr_decay_factor: g, the factor of each decay (> 0).
        step_lr_update_freq: instead of lr_updates: decay after every f epochs (f, 2f, ... below
            max_epochs - lr_cooldown_epochs).
    """

    def __init__(
        self,
        lr_updates: list[int] | None = None,
        lr_decay_factor: float | None = None,
        step_lr_update_freq: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(Phase.TRAIN_EPOCH_START, **kwargs)
        if lr_decay_factor is None:
            raise ValueError(f"{self.where}: needs the training param 'lr_decay_factor' (the factor g of each decay).")
        self.lr_decay_factor = check_number(
            lr_decay_factor, "lr_decay_factor", self.where, lambda v: v > 0, "must be > 0"
        )
        self.lr_updates = self._updates(lr_updates, step_lr_update_freq)
        # A per-step warmup may end inside an epoch: the schedule then takes over at that step.
        self.takes_over_mid_epoch = self.clock.warmup_epochs == 0 and self.clock.warmup_steps > 0

    def _updates(self, lr_updates: Any, step_lr_update_freq: Any) -> list[int]:
        if step_lr_update_freq is not None and lr_updates:
            raise ValueError(
                f"{self.where}: give either 'lr_updates' ({lr_updates!r}) or 'step_lr_update_freq' "
                f"({step_lr_update_freq!r}), not both."
            )
        if step_lr_update_freq is not None:
            if isinstance(step_lr_update_freq, bool) or not isinstance(step_lr_update_freq, numbers.Integral):
                raise TypeError(
                    f"{self.where}: training param 'step_lr_update_freq' must be an int, got {step_lr_update_freq!r}."
                )
            if step_lr_update_freq < 1:
                raise ValueError(
                    f"{self.where}: training param 'step_lr_update_freq' must be >= 1, got {step_lr_update_freq!r}."
                )
            return schedule_math.step_lr_updates(int(step_lr_update_freq), self.clock)
        if not lr_updates:
            raise ValueError(
                f"{self.where}: needs the training param 'lr_updates' (a non-empty list of epochs after which the LR "
                f"decays) or 'step_lr_update_freq', got lr_updates={lr_updates!r}."
            )
        if not isinstance(lr_updates, (list, tuple)) or not all(
            isinstance(epoch, numbers.Integral) and not isinstance(epoch, bool) for epoch in lr_updates
        ):
            raise TypeError(
                f"{self.where}: training param 'lr_updates' must be a list of epoch indices (int), got {lr_updates!r}."
            )
        return [int(epoch) for epoch in lr_updates]

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        if self.clock.warmup_epochs:
            return context.epoch >= self.clock.warmup_epochs
        return not self.clock.in_warmup(context.global_step)

    def perform_scheduling(self, context: PhaseContext) -> None:
        write_group_lrs(self, context, lambda group: self.lr_of(group["initial_lr"], context), None)

    def on_train_batch_start(self, context: PhaseContext) -> None:
        if self.takes_over_mid_epoch and context.opens_step and not self.clock.in_warmup(context.global_step):
            write_group_lrs(self, context, lambda group: self.lr_of(group["initial_lr"], context), context.batch_idx)

    def lr_of(self, lr0: float, context: PhaseContext) -> float:
        return schedule_math.step_lr(lr0, self.clock, context.epoch, self.lr_updates, self.lr_decay_factor)


@register_lr_scheduler("CosineLRScheduler")
class CosineLRScheduler(PerStepLRSchedule):
    """``lr = lr0*r + (lr0 - lr0*r) * 0.5 * (1 + cos(pi * t / T))``, per step.

    Args:
        cosine_final_lr_ratio: r, in [0, 1]: the LR the curve tends to at t = T, as a share of lr0.
    """

    def __init__(self, cosine_final_lr_ratio: float = 0.01, **kwargs: Any):
        super().__init__(**kwargs)
        self.cosine_final_lr_ratio = check_number(
            cosine_final_lr_ratio, "cosine_final_lr_ratio", self.where, lambda v: 0 <= v <= 1, "must be in [0, 1]"
        )

    def lr_of(self, lr0: float, context: PhaseContext) -> float:
        return schedule_math.cosine_lr(lr0, self.clock, context.global_step, self.cosine_final_lr_ratio)


@register_lr_scheduler("PolyLRScheduler")
class PolyLRScheduler(PerStepLRSchedule):
    """``lr = lr0 * (1 - t / T) ** poly_power``, per step.

    Args:
        poly_power: the exponent (> 0).
    """

    def __init__(self, poly_power: float = 0.9, **kwargs: Any):
        super().__init__(**kwargs)
        self.poly_power = check_number(poly_power, "poly_power", self.where, lambda v: v > 0, "must be > 0")

    def lr_of(self, lr0: float, context: PhaseContext) -> float:
        return schedule_math.poly_lr(lr0, self.clock, context.global_step, self.poly_power)


@register_lr_scheduler("ExponentialLRScheduler")
class ExponentialLRScheduler(PerStepLRSchedule):
    """``lr = lr0 * lr_decay_factor ** (t / S)``, per step (smooth: one factor g per epoch).

    Args:
        lr_decay_factor: g, the factor per epoch (> 0).
    """

    def __init__(self, lr_decay_factor: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if lr_decay_factor is None:
            raise ValueError(f"{self.where}: needs the training param 'lr_decay_factor' (the factor g per epoch).")
        self.lr_decay_factor = check_number(
            lr_decay_factor, "lr_decay_factor", self.where, lambda v: v > 0, "must be > 0"
        )

    def lr_of(self, lr0: float, context: PhaseContext) -> float:
        return schedule_math.exponential_lr(lr0, self.clock, context.global_step, self.lr_decay_factor)


@register_lr_scheduler("FunctionLRScheduler")
class FunctionLRScheduler(PerStepLRSchedule):
    """``lr = f(initial_lr=lr0, epoch=, iter=, max_epoch=, iters_per_epoch=)`` (SuperGradients' form) or
    ``lr = f(k + 1)`` for optimizer step k (MXNet's ``schedule(iteration)``, iterations from 1), per step.

    The form comes from the function's signature (``schedule_math.function_form``): one positional
    parameter is MXNet's, the five keywords are SuperGradients'; a signature that fits both or
    neither is an error. MXNet's form gives one LR for every param group.

    Args:
        lr_schedule_function: a callable (function or callable object), or an import path
            ``"package.module:function"`` (so a YAML recipe can name it and a checkpoint never holds a function).
    """

    def __init__(self, lr_schedule_function: Callable[..., float] | str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if lr_schedule_function is None:
            raise ValueError(
                f"{self.where}: needs the training param 'lr_schedule_function' "
                "(a callable or 'package.module:function')."
            )
        where = f"{self.where}: training param 'lr_schedule_function'"
        self.lr_schedule_function = resolve_callable(lr_schedule_function, where)
        self.form = schedule_math.function_form(self.lr_schedule_function, where)
        lrs = set(self.initial_lr.values()) if isinstance(self.initial_lr, dict) else {self.initial_lr}
        if self.form == "iteration" and len(lrs) > 1:
            raise ValueError(
                f"{where}: MXNet's form f(iteration) gives one LR for every param group, but initial_lr "
                f"{self.initial_lr} gives the groups different LRs; use the keyword form "
                "f(initial_lr, epoch, iter, max_epoch, iters_per_epoch), which receives each group's initial_lr."
            )

    def lr_of(self, lr0: float, context: PhaseContext) -> float:
        if self.form == "iteration":
            return schedule_math.iteration_function_lr(self.clock, context.global_step, self.lr_schedule_function)
        return schedule_math.function_lr(lr0, self.clock, context.global_step, self.lr_schedule_function)


SUPERGRADIENTS_ALIASES = {
    "step": StepLRScheduler,
    "cosine": CosineLRScheduler,
    "poly": PolyLRScheduler,
    "exp": ExponentialLRScheduler,
    "function": FunctionLRScheduler,
}
"""SuperGradients' older lr_mode names, accepted so its recipes port."""

for _alias, _cls in SUPERGRADIENTS_ALIASES.items():
    register_lr_scheduler(_alias)(_cls)


@register_lr_scheduler("CosineWarmRestartsLRScheduler")
class CosineWarmRestartsLRScheduler(PerStepLRSchedule):
    """SGDR: cosine cycles restarted at a (decayed) peak, per step, after any warmup.

    Cycle c (from 0) lasts ``P * m**c`` epochs (``T_c`` optimizer steps); step t_c of it uses
    ``peak*r + (peak - peak*r) * 0.5 * (1 + cos(pi * t_c / T_c))`` with ``peak = lr0 * d**c``.

    Args:
        restart_period_epochs: P, epochs of the first cycle (int >= 1).
        restart_period_mult: m, growth of each cycle's length (int >= 1, as torch's T_mult).
        cosine_final_lr_ratio: r, in [0, 1]: where each cycle's curve tends, as a share of its peak.
        restart_lr_decay: d, in (0, 1]: factor of each cycle's peak over the previous one.
    """

    def __init__(
        self,
        restart_period_epochs: int | None = None,
        restart_period_mult: int = 1,
        cosine_final_lr_ratio: float = 0.01,
        restart_lr_decay: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if restart_period_epochs is None:
            raise ValueError(
                f"{self.where}: needs the training param 'restart_period_epochs' (epochs of the first cycle)."
            )
        self.restart_period_epochs = self._check_int(restart_period_epochs, "restart_period_epochs")
        self.restart_period_mult = self._check_int(restart_period_mult, "restart_period_mult")
        self.cosine_final_lr_ratio = check_number(
            cosine_final_lr_ratio, "cosine_final_lr_ratio", self.where, lambda v: 0 <= v <= 1, "must be in [0, 1]"
        )
        self.restart_lr_decay = check_number(
            restart_lr_decay, "restart_lr_decay", self.where, lambda v: 0 < v <= 1, "must be in (0, 1]"
        )

    def _check_int(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"{self.where}: training param {key!r} must be an int, got {type(value).__name__} {value!r}."
            )
        if value < 1:
            raise ValueError(f"{self.where}: training param {key!r} must be >= 1, got {value!r}.")
        return int(value)

    def lr_of(self, lr0: float, context: PhaseContext) -> float:
        return schedule_math.cosine_warm_restarts_lr(
            lr0,
            self.clock,
            context.global_step,
            self.restart_period_epochs,
            self.restart_period_mult,
            self.cosine_final_lr_ratio,
            self.restart_lr_decay,
        )

    def restart_epochs(self) -> list[int]:
        """Epochs (from 1) after whose end the next cycle starts (see schedule_math.warm_restart_epochs)."""
        return schedule_math.warm_restart_epochs(self.clock, self.restart_period_epochs, self.restart_period_mult)
