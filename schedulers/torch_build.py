"""Build a torch.optim.lr_scheduler object from the mapping form of ``lr_mode``.

``{"OneCycleLR": {"max_lr": 0.1, "total_steps": "auto"}}``: the class is looked up by name in
``registry.TORCH_LR_SCHEDULERS`` (every torch class plus the user's registered ``LRScheduler``
subclasses); keyword arguments are checked against the class signature; callables may be given as
``"package.module:function"``; run-length arguments accept ``"auto"``; ``SequentialLR`` and
``ChainedScheduler`` build their ``schedulers`` list from nested ``{Name: {...}}`` mappings.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim import lr_scheduler

from registry import LR_SCHEDULERS, TORCH_LR_SCHEDULERS, did_you_mean, resolve_callable

WHERE = "training_params: key 'lr_mode'"

AUTO = "auto"
AUTO_LENGTH_PARAMS: dict[type, str] = {
    lr_scheduler.OneCycleLR: "total_steps",
    lr_scheduler.CosineAnnealingLR: "T_max",
    lr_scheduler.PolynomialLR: "total_iters",
    lr_scheduler.LinearLR: "total_iters",
}
"""Arguments that accept "auto": the number of times the scheduler steps in this run."""

CALLABLE_PARAMS = ("lr_lambda", "scale_fn")
"""Arguments that may be an import path string "package.module:function"."""

NESTING_CLASSES = (lr_scheduler.SequentialLR, lr_scheduler.ChainedScheduler)
"""Schedulers whose ``schedulers`` argument is a list of nested ``{Name: {...}}`` mappings."""


def split_lr_mode(lr_mode: Mapping[str, Any], where: str = WHERE) -> tuple[str, dict[str, Any]]:
    """``{Name: kwargs}`` -> (Name, a copy of kwargs).

    Raises:
        ValueError: not exactly one key.
        TypeError: the kwargs are not a mapping.
    """
    if len(lr_mode) != 1:
        raise ValueError(
            f"{where}: a torch-scheduler lr_mode is a mapping with exactly one key, the scheduler's class name "
            f"(e.g. {{'StepLR': {{'step_size': 1, 'gamma': 0.1}}}}); got keys {list(lr_mode)}."
        )
    ((name, kwargs),) = lr_mode.items()
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(
            f"{where}: the arguments of {name!r} must be a mapping of keyword arguments, got {type(kwargs).__name__} {kwargs!r}."
        )
    return str(name), dict(kwargs)


def scheduler_class(name: str, where: str = WHERE) -> type:
    """The scheduler class registered under ``name``.

    Raises:
        ValueError: unknown name; lists torch's classes, the user's registered ones and the closest match.
    """
    if name in TORCH_LR_SCHEDULERS:
        return TORCH_LR_SCHEDULERS.get(name)
    torch_names = sorted(n for n, cls in TORCH_LR_SCHEDULERS.items() if cls.__module__ == lr_scheduler.__name__)
    user_names = sorted(n for n in TORCH_LR_SCHEDULERS if n not in torch_names)
    hint = ""
    if name in LR_SCHEDULERS:
        hint = f" {name!r} is a built-in lr_mode: give it as a string (lr_mode: {name}) with its params as training params."
    raise ValueError(
        f"{where}: unknown torch scheduler {name!r}.{hint} torch.optim.lr_scheduler classes: {', '.join(torch_names)}. "
        f"Registered with @register_lr_scheduler: {', '.join(user_names) or 'none'}."
        f"{did_you_mean(name, list(TORCH_LR_SCHEDULERS))}"
    )


def auto_length_param(cls: type) -> str | None:
    """The argument of ``cls`` that accepts "auto" (through its class hierarchy), or None."""
    return next((param for base, param in AUTO_LENGTH_PARAMS.items() if issubclass(cls, base)), None)


def build_scheduler(
    cls: type, kwargs: dict[str, Any], optimizer: torch.optim.Optimizer, run_length: int, where: str
) -> lr_scheduler.LRScheduler:
    """Construct ``cls`` on ``optimizer``.

    Args:
        cls: a class from ``scheduler_class``.
        kwargs: its keyword arguments (without ``phase``/``metric_name``); resolved in place.
        optimizer: the optimizer to schedule.
        run_length: the value of "auto": how many times this scheduler steps in the run.
        where: the configuration path ending with the class name, for messages.

    Raises:
        ValueError, TypeError: an unknown or missing argument, a bad value, an impossible nesting.
    """
    name = cls.__name__
    accepted = _accepted_params(cls, where)
    if accepted is not None:
        _check_arguments(cls, kwargs, accepted, where)
    for param in CALLABLE_PARAMS:
        if param in kwargs:
            kwargs[param] = _resolve_callables(kwargs[param], f"{where} {param}")
    length_param = auto_length_param(cls)
    for key, value in kwargs.items():
        if isinstance(value, str) and value == AUTO and key != length_param:
            accepts = ", ".join(f"{base.__name__}.{param}" for base, param in AUTO_LENGTH_PARAMS.items())
            raise ValueError(f"{where}: {key}='auto' is not supported; 'auto' is accepted by {accepts}.")
    if kwargs.get(length_param) == AUTO:
        if run_length < 1:
            raise ValueError(
                f"{where}: {length_param}='auto' resolves to {run_length} steps; the schedule has no steps to run."
            )
        kwargs[length_param] = run_length
    if issubclass(cls, NESTING_CLASSES):
        kwargs["schedulers"] = _build_nested(cls, kwargs, optimizer, run_length, where)
    try:
        scheduler = cls(optimizer=optimizer, **kwargs)
    except (TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{where}: {name}({_describe_kwargs(kwargs)}) rejected its arguments: {error}") from None
    return scheduler


def short_onecycle(scheduler: lr_scheduler.LRScheduler, run_length: int, path: str = "") -> tuple[str, int, int] | None:
    """Find a OneCycleLR (also nested) that this run would step past its ``total_steps``.

    torch raises "Tried to step N times" only when that step comes, possibly hours into the run.

    Returns:
        (its path, its total_steps, the steps it takes in this run), or None when every one fits.
    """
    label = f"{path}{type(scheduler).__name__}"
    if isinstance(scheduler, lr_scheduler.OneCycleLR) and scheduler.total_steps < run_length:
        return label, scheduler.total_steps, run_length
    children = getattr(scheduler, "_schedulers", None) or []
    if isinstance(scheduler, lr_scheduler.SequentialLR):
        lengths = _sequential_lengths(scheduler._milestones, run_length)
    else:
        lengths = [run_length] * len(children)
    for index, (child, length) in enumerate(zip(children, lengths)):
        found = short_onecycle(child, length, f"{label} schedulers[{index}]: ")
        if found:
            return found
    return None


def describe(scheduler: lr_scheduler.LRScheduler) -> str:
    """The class name, with nested classes: ``SequentialLR(LinearLR, CosineAnnealingLR)``."""
    children = getattr(scheduler, "_schedulers", None)
    if children is None:
        return type(scheduler).__name__
    return f"{type(scheduler).__name__}({', '.join(describe(child) for child in children)})"


def _accepted_params(cls: type, where: str) -> list[str] | None:
    """Keyword arguments of ``cls`` besides the optimizer; None when it takes ``**kwargs``."""
    parameters = inspect.signature(cls.__init__).parameters
    if "optimizer" not in parameters:
        raise TypeError(
            f"{where}: {cls.__qualname__}.__init__ must take an 'optimizer' argument to be used as lr_mode."
        )
    if any(param.kind is inspect.Parameter.VAR_KEYWORD for param in parameters.values()):
        return None
    return [name for name in parameters if name not in ("self", "optimizer")]


def _check_arguments(cls: type, kwargs: dict[str, Any], accepted: list[str], where: str) -> None:
    for key in kwargs:
        if key not in accepted:
            raise ValueError(
                f"{where}: {cls.__name__} has no parameter {key!r}.{did_you_mean(key, accepted)} "
                f"Accepted parameters: {', '.join(accepted)} (plus phase, and metric_name for ReduceLROnPlateau)."
            )
    parameters = inspect.signature(cls.__init__).parameters
    missing = [
        name
        for name in accepted
        if parameters[name].default is inspect.Parameter.empty
        and parameters[name].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        and name not in kwargs
    ]
    if missing:
        raise ValueError(
            f"{where}: {cls.__name__} needs {', '.join(missing)}. Accepted parameters: {', '.join(accepted)}."
        )


def _resolve_callables(value: Any, where: str) -> Any:
    if isinstance(value, (list, tuple)):
        return [resolve_callable(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return resolve_callable(value, where)


def _build_nested(
    cls: type, kwargs: dict[str, Any], optimizer: torch.optim.Optimizer, run_length: int, where: str
) -> list[lr_scheduler.LRScheduler]:
    """The ``schedulers`` list of SequentialLR/ChainedScheduler, each built on ``optimizer``."""
    entries = kwargs.get("schedulers")
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValueError(
            f"{where}: schedulers must be a non-empty list of {{Name: {{...}}}} mappings, "
            f"e.g. [{{LinearLR: {{...}}}}, {{CosineAnnealingLR: {{...}}}}]; got {entries!r}."
        )
    if all(isinstance(entry, lr_scheduler.LRScheduler) for entry in entries):
        raise TypeError(
            f"{where}: give schedulers as {{Name: {{...}}}} mappings; scheduler objects need an optimizer the trainer has not built yet."
        )
    if issubclass(cls, lr_scheduler.SequentialLR):
        milestones = kwargs.get("milestones")
        if not isinstance(milestones, (list, tuple)) or len(milestones) != len(entries) - 1:
            raise ValueError(
                f"{where}: milestones must be a list of {len(entries) - 1} increasing step counts (one fewer than "
                f"schedulers); got {milestones!r}."
            )
        if any(not isinstance(m, int) or isinstance(m, bool) for m in milestones) or list(milestones) != sorted(
            milestones
        ):
            raise ValueError(f"{where}: milestones must be increasing integers, got {milestones!r}.")
        lengths = _sequential_lengths(list(milestones), run_length)
    else:
        lengths = [run_length] * len(entries)
    children = []
    for index, (entry, length) in enumerate(zip(entries, lengths)):
        entry_where = f"{where} schedulers[{index}]"
        if not isinstance(entry, Mapping):
            raise TypeError(
                f"{entry_where}: expected a {{Name: {{...}}}} mapping, got {type(entry).__name__} {entry!r}."
            )
        name, child_kwargs = split_lr_mode(entry, entry_where)
        child_class = scheduler_class(name, entry_where)
        if issubclass(child_class, lr_scheduler.ReduceLROnPlateau):
            raise ValueError(
                f"{entry_where}: ReduceLROnPlateau cannot be nested in {cls.__name__} (it steps on a metric); "
                "use it alone as lr_mode: {ReduceLROnPlateau: {metric_name: ..., ...}}."
            )
        for reserved in ("phase", "metric_name"):
            if reserved in child_kwargs:
                raise ValueError(
                    f"{entry_where}: {reserved!r} belongs to the outer {cls.__name__}, not to a nested scheduler."
                )
        children.append(build_scheduler(child_class, child_kwargs, optimizer, length, f"{entry_where} {name}"))
    return children


def _sequential_lengths(milestones: list[int], run_length: int) -> list[int]:
    """Steps each SequentialLR child runs: milestone to milestone, the last one to the end of the run."""
    bounds = [0, *milestones, run_length]
    return [end - start for start, end in zip(bounds, bounds[1:])]


def _describe_kwargs(kwargs: dict[str, Any]) -> str:
    shown = {key: (type(value).__name__ if key == "schedulers" else value) for key, value in kwargs.items()}
    return ", ".join(f"{key}={value!r}" for key, value in shown.items())
