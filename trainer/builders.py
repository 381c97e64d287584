"""Build the optimizer (with named param groups), the loss and the metrics from training params."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
import torchmetrics

from registry import LOSSES, METRICS, OPTIMIZERS, did_you_mean


def build_param_groups(
    net: torch.nn.Module, initial_lr: float | Mapping[str, float], zero_weight_decay_on_bias_and_bn: bool
) -> list[dict[str, Any]]:
    """One param group per ``initial_lr`` entry, in the mapping's order.

    A parameter belongs to the entry with the longest prefix of its name; ``"default"`` takes the
    rest. Each group carries ``name`` (the entry) and ``initial_lr`` (its lr0). With
    ``zero_weight_decay_on_bias_and_bn``, each group is split and one-dimensional parameters
    (biases, normalization weights) get ``weight_decay=0``.

    Raises:
        ValueError: a mapping without "default", a prefix that matches no parameter, or a bad LR.
    """
    lrs = dict(initial_lr) if isinstance(initial_lr, Mapping) else {"default": initial_lr}
    for name, lr in lrs.items():
        if isinstance(lr, bool) or not isinstance(lr, (int, float)):
            raise TypeError(f"training_params: initial_lr[{name!r}] must be a number, got {type(lr).__name__} {lr!r}.")
        if lr < 0:
            raise ValueError(f"training_params: initial_lr[{name!r}] must be a number >= 0, got {lr!r}.")
    if "default" not in lrs:
        raise ValueError(
            f"training_params: the initial_lr mapping {lrs} needs a 'default' entry for the parameters "
            "that match no prefix."
        )
    prefixes = sorted((name for name in lrs if name != "default"), key=len, reverse=True)
    members: dict[str, list[tuple[str, torch.nn.Parameter]]] = {name: [] for name in lrs}
    for param_name, param in net.named_parameters():
        owner = next((prefix for prefix in prefixes if param_name.startswith(prefix)), "default")
        members[owner].append((param_name, param))
    for prefix in prefixes:
        if not members[prefix]:
            names = [name for name, _ in net.named_parameters()]
            raise ValueError(
                f"training_params: initial_lr prefix {prefix!r} matches no parameter of the net."
                f"{did_you_mean(prefix, names)} Parameter names start with: "
                f"{', '.join(sorted({name.split('.')[0] for name in names}))}."
            )
    groups = []
    for name, lr in lrs.items():
        params = members[name]
        if not params:
            continue
        if zero_weight_decay_on_bias_and_bn:
            decay = [param for _, param in params if param.ndim > 1]
            no_decay = [param for _, param in params if param.ndim <= 1]
            groups += [{"name": name, "params": decay, "lr": lr, "initial_lr": lr}] if decay else []
            groups += (
                [{"name": name, "params": no_decay, "lr": lr, "initial_lr": lr, "weight_decay": 0.0}]
                if no_decay
                else []
            )
        else:
            groups.append({"name": name, "params": [param for _, param in params], "lr": lr, "initial_lr": lr})
    return groups


def build_optimizer(net: torch.nn.Module, training_params: Any) -> torch.optim.Optimizer:
    """The optimizer named (or given) by ``training_params.optimizer``.

    Raises:
        ValueError: unknown optimizer name, or missing initial_lr.
        TypeError: an optimizer value of the wrong type or bad optimizer_params.
    """
    spec = training_params.optimizer
    if isinstance(spec, torch.optim.Optimizer):
        for group in spec.param_groups:
            group.setdefault("name", "default")
            group.setdefault("initial_lr", group["lr"])
        return spec
    if training_params.initial_lr is None:
        raise ValueError("training_params: missing required key 'initial_lr' (the base learning rate).")
    if isinstance(spec, str):
        try:
            optimizer_class = OPTIMIZERS.get(spec)
        except KeyError as error:
            raise ValueError(f"training_params: key 'optimizer': {error}") from None
    elif inspect.isclass(spec) and issubclass(spec, torch.optim.Optimizer):
        optimizer_class = spec
    else:
        raise TypeError(
            "training_params: key 'optimizer' must be a registered name, a torch.optim.Optimizer class or "
            f"instance, got {type(spec).__name__} {spec!r}."
        )
    groups = build_param_groups(net, training_params.initial_lr, training_params.zero_weight_decay_on_bias_and_bn)
    params = dict(training_params.optimizer_params)
    try:
        return optimizer_class(groups, **params)
    except TypeError as error:
        accepted = [name for name in inspect.signature(optimizer_class).parameters if name not in ("self", "params")]
        bad = next((key for key in params if key not in accepted), None)
        hint = f" Unknown key {bad!r}.{did_you_mean(bad, accepted)}" if bad else ""
        raise TypeError(
            f"training_params: optimizer_params {params} do not fit {optimizer_class.__name__}: {error}.{hint} "
            f"Accepted: {', '.join(accepted)}."
        ) from None


def build_loss(training_params: Any) -> torch.nn.Module:
    """The loss named (or given) by ``training_params.loss``.

    Raises:
        ValueError: unknown loss name.
        TypeError: a loss value of the wrong type.
    """
    spec = training_params.loss
    params = dict(training_params.criterion_params)
    if isinstance(spec, Mapping) and len(spec) == 1:
        ((spec, extra),) = spec.items()
        params.update(extra or {})
    if isinstance(spec, torch.nn.Module):
        return spec
    if isinstance(spec, str):
        try:
            loss_class = LOSSES.get(spec)
        except KeyError as error:
            raise ValueError(f"training_params: key 'loss': {error}") from None
    elif inspect.isclass(spec) and issubclass(spec, torch.nn.Module):
        loss_class = spec
    else:
        raise TypeError(
            "training_params: key 'loss' must be a registered name, {name: params} or an nn.Module, "
            f"got {type(spec).__name__} {spec!r}."
        )
    return loss_class(**params)


def build_metrics(metrics_list: Any, key: str) -> dict[str, torchmetrics.Metric]:
    """Name -> Metric for ``train_metrics_list``/``valid_metrics_list``.

    Entries: a Metric instance (named by its class), a name resolved from torchmetrics or the
    metric registry, or ``{name: params}`` / ``{name: Metric}``.

    Raises:
        ValueError: unknown metric name, duplicate names, or the reserved name 'loss'.
        TypeError: an entry of the wrong type.
    """
    metrics: dict[str, torchmetrics.Metric] = {}
    for entry in metrics_list:
        items = entry.items() if isinstance(entry, Mapping) else [(None, entry)]
        for name, value in items:
            metric_name, metric = _build_metric(name, value, key)
            if metric_name in metrics or metric_name == "loss":
                raise ValueError(
                    f"training_params: key {key!r}: metric name {metric_name!r} appears twice or is reserved."
                )
            metrics[metric_name] = metric
    return metrics


def _build_metric(name: str | None, value: Any, key: str) -> tuple[str, torchmetrics.Metric]:
    if isinstance(value, torchmetrics.Metric):
        return name or type(value).__name__, value
    if name is None and isinstance(value, str):
        name, value = value, {}
    if name is not None and (value is None or isinstance(value, Mapping)):
        try:
            metric_class = METRICS.get(name)
        except KeyError as error:
            raise ValueError(f"training_params: key {key!r}: {error}") from None
        try:
            return name, metric_class(**dict(value or {}))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"training_params: key {key!r}: cannot build metric {name!r} with {value}: {error}"
            ) from None
    raise TypeError(
        f"training_params: key {key!r}: each entry must be a torchmetrics Metric, a name or {{name: params}}, "
        f"got {type(value).__name__} {value!r}."
    )
