"""The per-param-group values a run logs each optimizer step: ``lr``, momentum and scheduled keys.

``lr_columns`` names the columns, ``lr_values`` reads them as floats. ``StepValueReader`` reads the
same values for the per-step log in two halves: a step takes the raw entries (one C-level
``itemgetter`` call per group) and a flush orders them into the columns as floats.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import Any

import torch


def param_group_labels(param_groups: Iterable[dict[str, Any]]) -> list[str]:
    """One label per param group: its ``name`` ("default" when unnamed); repeats get ``#2``, ``#3``.

    Groups share a name when ``zero_weight_decay_on_bias_and_bn`` splits a group in two; the
    second keeps the name with a suffix, so every group has its own column.
    """
    labels, seen = [], {}
    for group in param_groups:
        name = str(group.get("name", "default"))
        count = seen.get(name, 0)
        labels.append(name if count == 0 else f"{name}#{count + 1}")
        seen[name] = count + 1
    return labels


def momentum_key(group: dict[str, Any]) -> str | None:
    """Where a param group keeps its momentum: ``momentum`` (SGD, RMSprop), ``betas`` (Adam family, the
    first of the pair), or None."""
    if "momentum" in group:
        return "momentum"
    if "betas" in group:
        return "betas"
    return None


def group_momentum(group: dict[str, Any]) -> float | None:
    """The momentum of a param group: ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam family)."""
    key = momentum_key(group)
    if key is None:
        return None
    return float(group[key][0] if key == "betas" else group[key])


def other_keys(scheduled_keys: Iterable[str]) -> list[str]:
    """Scheduled keys that get their own columns: all but ``lr`` and ``momentum`` (always logged)."""
    return [key for key in scheduled_keys if key not in ("lr", "momentum")]


def lr_columns(param_groups: list[dict[str, Any]], scheduled_keys: Iterable[str] = ()) -> list[str]:
    """``lr/<group>`` columns, then ``momentum/<group>`` for groups that have a momentum, then
    ``<key>/<group>`` for each other scheduled key (``context.scheduled_keys``, e.g. ``weight_decay``)."""
    labels = param_group_labels(param_groups)
    momentum = [f"momentum/{label}" for label, group in zip(labels, param_groups) if momentum_key(group) is not None]
    others = [f"{key}/{label}" for key in other_keys(scheduled_keys) for label in labels]
    return [f"lr/{label}" for label in labels] + momentum + others


def lr_values(param_groups: list[dict[str, Any]], scheduled_keys: Iterable[str] = ()) -> list[float]:
    """The values of ``lr_columns`` for the optimizer's current state (Python floats, no sync)."""
    momentum = [group_momentum(group) for group in param_groups]
    values = [float(group["lr"]) for group in param_groups] + [value for value in momentum if value is not None]
    for key in other_keys(scheduled_keys):
        values += [float(group[key]) for group in param_groups]
    return values


class StepValueReader:
    """Reads ``lr_values`` of each optimizer step at the cost of one C-level call per param group.

    ``read`` takes the raw entries of every group (``lr``, its momentum entry, each other scheduled key);
    ``cells`` turns what ``read`` returned into the ``lr_columns`` values (floats, ``betas[0]``), at a
    flush. The raw entries are kept by reference, which is exact for floats and tuples (schedulers
    replace them); where a value is a tensor (updated in place), ``read`` copies ``lr_values`` at once.

    Args:
        param_groups: the optimizer's param groups at the start of training.
        scheduled_keys: ``context.scheduled_keys``.
    """

    def __init__(self, param_groups: list[dict[str, Any]], scheduled_keys: Iterable[str] = ()):
        self.scheduled_keys = list(scheduled_keys)
        others = other_keys(self.scheduled_keys)
        group_keys = [("lr", *filter(None, [momentum_key(group)]), *others) for group in param_groups]
        # itemgetter of two or more keys returns a tuple; the extra "lr" keeps that so for a lone key.
        self._getters = [itemgetter(*keys, "lr") for keys in group_keys]
        self._lone_getter = self._getters[0] if len(self._getters) == 1 else None
        self._copies = any(
            isinstance(group[key], torch.Tensor) for group, keys in zip(param_groups, group_keys) for key in keys
        )
        lr_cells = [(index, 0, False) for index in range(len(param_groups))]
        momentum_cells = [
            (index, 1, keys[1] == "betas")
            for index, keys in enumerate(group_keys)
            if len(keys) > 1 and keys[1] in ("momentum", "betas")
        ]
        other_cells = [(index, keys.index(key), False) for key in others for index, keys in enumerate(group_keys)]
        self._cells = lr_cells + momentum_cells + other_cells

    def read(self, param_groups: list[dict[str, Any]]) -> list[Any] | tuple[Any]:
        """This step's raw entries (the per-step half)."""
        if self._copies:
            return lr_values(param_groups, self.scheduled_keys)
        if self._lone_getter is not None:  # one group (the common case): no loop
            return (self._lone_getter(param_groups[0]),)
        return [getter(group) for getter, group in zip(self._getters, param_groups)]

    def cells(self, entries: list[Any]) -> list[float]:
        """The ``lr_columns`` values of what ``read`` returned (the flush half)."""
        if self._copies:
            return entries
        return [
            float(entries[group][position][0] if first_of_pair else entries[group][position])
            for group, position, first_of_pair in self._cells
        ]
