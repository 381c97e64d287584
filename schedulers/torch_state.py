"""Scheduler state as checkpoint data, and the differences between two states or two param sets.

A checkpoint is loaded with ``torch.load(weights_only=True)``, which accepts numbers, strings,
``None``, lists, tuples, dicts and tensors only. ``plain_state`` drops functions from a scheduler's
``state_dict()`` (the trainer rebuilds them from the recipe) and rejects any other object.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

PLAIN_TYPES = (bool, int, float, str, type(None), torch.Tensor)

RUN_CONTROL_PARAMS = (
    "resume",
    "resume_path",
    "resume_strict_load",
    "resume_schedule",
    "load_opt_params",
    "silent_mode",
)
"""Training params that differ between a run and its resume by design; never reported as changes."""


def plain_state(value: Any, where: str) -> Any:
    """A copy of ``value`` without functions: dict entries holding one are dropped, list items become None.

    Args:
        value: a scheduler's ``state_dict()``.
        where: the path of ``value``, for the error.

    Raises:
        TypeError: the state holds an object a weights_only checkpoint cannot store.
    """
    if isinstance(value, dict):
        return {key: plain_state(item, f"{where}[{key!r}]") for key, item in value.items() if not _is_function(item)}
    if isinstance(value, (list, tuple)):
        items = [None if _is_function(item) else plain_state(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, PLAIN_TYPES):
        return value
    raise TypeError(
        f"{where} is a {type(value).__name__} ({value!r}); a checkpoint loaded with weights_only=True can hold "
        "only numbers, strings, None, lists, tuples, dicts and tensors. Keep the scheduler's state to those."
    )


def diff_states(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """``(path, old value, new value)`` for every leaf where two plain states differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in list(old) + [key for key in new if key not in old]:
            changes += diff_states(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return changes
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)) and len(old) == len(new):
        return [change for i, (a, b) in enumerate(zip(old, new)) for change in diff_states(a, b, f"{path}[{i}]")]
    return [] if _same(old, new) else [(path, old, new)]


def changed_training_params(saved: dict[str, Any] | None, current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, saved value, current value)`` for the training params that differ (run-control keys left out).

    Object reprs are compared without their memory addresses.
    """
    if not saved:
        return []
    changes = []
    for key in list(saved) + [key for key in current if key not in saved]:
        if key in RUN_CONTROL_PARAMS:
            continue
        old, new = _without_addresses(saved.get(key)), _without_addresses(current.get(key))
        if old != new:
            changes.append((key, saved.get(key), current.get(key)))
    return changes


def format_changes(changes: list[tuple[str, Any, Any]]) -> str:
    """``"max_epochs (6 -> 12), T_max (30 -> 60)"``."""
    return ", ".join(f"{name} ({old!r} -> {new!r})" for name, old, new in changes)


def _is_function(value: Any) -> bool:
    return callable(value) and not isinstance(value, torch.Tensor)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b)


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _without_addresses(value: Any) -> Any:
    if isinstance(value, str):
        return _ADDRESS.sub("", value)
    if isinstance(value, dict):
        return {key: _without_addresses(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_addresses(item) for item in value]
    return value
