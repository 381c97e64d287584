"""Shared by the built-in schedules and the warmups: checking and constructing LR classes, the
run's clock, and writing each param group's LR."""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any

from callbacks import PhaseContext
from schedulers.base import LRCallbackBase
from schedulers.clock import ScheduleClock, steps_per_epoch

TRAINER_SUPPLIED = ("initial_lr", "update_param_groups", "train_loader_len", "net", "training_params")
"""Constructor arguments the trainer passes itself, on top of every training param."""


def checked_lr_class(cls: Any, name: str, where: str) -> type[LRCallbackBase]:
    """``cls`` if it is an ``LRCallbackBase`` subclass, else a TypeError naming ``where``."""
    if not (inspect.isclass(cls) and issubclass(cls, LRCallbackBase)):
        raise TypeError(
            f"{where}: {name!r} is registered to {cls!r}, which is not an LRCallbackBase subclass; "
            "register a subclass of schedulers.LRCallbackBase."
        )
    return cls


def constructor_param_names(cls: type) -> set[str]:
    """Named constructor parameters of ``cls`` and its bases up to ``LRCallbackBase``.

    Those are the training-param keys the class reads. ``LRCallbackBase``'s own arguments (``phase``,
    which a subclass passes itself, and the ones the trainer supplies) are left out.
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass in LRCallbackBase.__mro__ or "__init__" not in vars(klass):
            continue
        for parameter in list(inspect.signature(klass.__init__).parameters.values())[1:]:
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                names.add(parameter.name)
    return names - {"phase", *TRAINER_SUPPLIED}


def construct_lr_callback(
    cls: type[LRCallbackBase], name: str, where: str, training_params: Any, net, train_loader_len: int
):
    """``cls(**training params, initial_lr=, update_param_groups=, train_loader_len=, net=, training_params=)``.

    Raises:
        ValueError: a required constructor argument is not among the training params.
    """
    unwrapped = getattr(net, "module", net)
    kwargs = {
        **training_params,
        "initial_lr": training_params["initial_lr"],
        "update_param_groups": hasattr(unwrapped, "update_param_groups"),
        "train_loader_len": train_loader_len,
        "net": net,
        "training_params": training_params,
    }
    for parameter in inspect.signature(cls).parameters.values():
        required = parameter.default is parameter.empty and parameter.kind not in (
            parameter.VAR_POSITIONAL,
            parameter.VAR_KEYWORD,
        )
        if required and parameter.name not in kwargs:
            raise ValueError(
                f"{where}: {name!r} ({cls.__module__}.{cls.__qualname__}) needs the training param "
                f"{parameter.name!r}, which is not set."
            )
    return cls(**kwargs)


def run_clock(training_params: Any, train_loader_len: int) -> ScheduleClock:
    """The run's ScheduleClock, from the training params and the train loader's length."""
    steps = steps_per_epoch(train_loader_len, training_params.max_train_batches, training_params.batch_accumulate)
    return ScheduleClock.from_params(training_params, steps)


def check_schedule_fits(clock: ScheduleClock, training_params: Any) -> None:
    """Raise when warmup plus cooldown leave no step for the main schedule (T = N - W - C < 1)."""
    if clock.main_steps < 1:
        raise ValueError(
            f"training_params: warmup plus cooldown must be shorter than training: warmup W = {clock.warmup_steps} "
            f"steps (lr_warmup_epochs={training_params.lr_warmup_epochs}, lr_warmup_steps={training_params.lr_warmup_steps}) "
            f"+ cooldown C = {clock.cooldown_steps} steps (lr_cooldown_epochs={training_params.lr_cooldown_epochs}) "
            f">= N = {clock.total_steps} steps (max_epochs={clock.max_epochs} x {clock.steps_per_epoch} steps per epoch)."
        )


def write_group_lrs(
    callback: LRCallbackBase, context: PhaseContext, value_of: Callable[[dict], float], batch_idx: int | None
) -> None:
    """Set ``callback.lr`` to each param group's value and write it with ``update_lr``.

    ``callback.lr`` becomes a float when ``initial_lr`` is a number and every group has the same
    value, else a {group name: lr} mapping. Groups that share a name but not a value (possible only
    with an optimizer instance) are written one by one.
    """
    groups = context.optimizer.param_groups
    if len(groups) == 1 and not isinstance(callback.initial_lr, Mapping):
        # The common case, at every optimizer step: the outcome of the general path below without its
        # bookkeeping (benchmarks/sched_micro.py). A NaN still takes the general path.
        value = value_of(groups[0])
        if value == value:
            callback.lr = value
            callback.update_lr(context.optimizer, context.epoch, batch_idx)
            return
        values = [value]
    else:
        values = [value_of(group) for group in groups]
    by_name: dict[str, float] = {}
    for group, value in zip(groups, values):
        by_name.setdefault(group["name"], value)
    if any(by_name[group["name"]] != value for group, value in zip(groups, values)):
        for group, value in zip(groups, values):
            group["lr"] = value
        callback.lr = by_name
        return
    uniform = not isinstance(callback.initial_lr, Mapping) and len(set(values)) == 1
    callback.lr = values[0] if uniform else by_name
    callback.update_lr(context.optimizer, context.epoch, batch_idx)


def check_number(value: Any, key: str, where: str, rule: Callable[[float], bool], rule_text: str) -> float:
    """``value`` if it is a number obeying ``rule``; a TypeError or ValueError naming ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: training param {key!r} must be a number, got {type(value).__name__} {value!r}.")
    if not rule(value):
        raise ValueError(f"{where}: training param {key!r} {rule_text}, got {value!r}.")
    return value
