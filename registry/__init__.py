"""Name registries for everything a recipe or ``training_params`` can name.

``registry`` imports nothing of ``callbacks``, ``schedulers`` or ``trainer``.
"""

from __future__ import annotations

import inspect

from registry.registry import (
    Registry,
    UnknownNameError,
    closest_match,
    did_you_mean,
    import_from_path,
    resolve_callable,
    unknown_name_message,
)


def _torch_optimizers(registry: Registry) -> None:
    import torch.optim

    for name, obj in vars(torch.optim).items():
        if inspect.isclass(obj) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer:
            registry.add(name, obj)


def _torch_losses(registry: Registry) -> None:
    import torch.nn

    for name, obj in vars(torch.nn).items():
        if inspect.isclass(obj) and name.endswith("Loss") and issubclass(obj, torch.nn.Module):
            registry.add(name, obj)


def _torchmetrics_metrics(registry: Registry) -> None:
    import torchmetrics

    for name in torchmetrics.__all__:
        obj = getattr(torchmetrics, name, None)
        if inspect.isclass(obj) and issubclass(obj, torchmetrics.Metric) and obj is not torchmetrics.Metric:
            registry.add(name, obj)


def _torch_lr_schedulers(registry: Registry) -> None:
    from torch.optim import lr_scheduler

    for name, obj in vars(lr_scheduler).items():
        if (
            inspect.isclass(obj)
            and issubclass(obj, lr_scheduler.LRScheduler)
            and obj is not lr_scheduler.LRScheduler
            and not name.startswith("_")
        ):
            registry.add(name, obj)


OPTIMIZERS = Registry("optimizer", populate=_torch_optimizers)
LOSSES = Registry("loss", populate=_torch_losses)
METRICS = Registry("metric", populate=_torchmetrics_metrics)
CALLBACKS = Registry("callback")
LR_SCHEDULERS = Registry("lr_mode")
LR_WARMUPS = Registry("warmup_mode")
TORCH_LR_SCHEDULERS = Registry("torch lr scheduler", populate=_torch_lr_schedulers)
MODELS = Registry("model")
DATASETS = Registry("dataset")

register_optimizer = OPTIMIZERS.register
register_loss = LOSSES.register
register_metric = METRICS.register
register_callback = CALLBACKS.register
register_lr_warmup = LR_WARMUPS.register
register_model = MODELS.register
register_dataset = DATASETS.register


def register_lr_scheduler(name=None):
    """Register an LR schedule under a name usable as ``training_params["lr_mode"]``.

    Works as ``@register_lr_scheduler("name")``, ``@register_lr_scheduler()`` and bare.
    An ``LRCallbackBase`` subclass becomes a string ``lr_mode``; a subclass of torch's
    ``LRScheduler`` becomes usable as a key of the mapping form of ``lr_mode``.
    """
    from torch.optim.lr_scheduler import LRScheduler

    def add(registered_name, cls):
        target = TORCH_LR_SCHEDULERS if inspect.isclass(cls) and issubclass(cls, LRScheduler) else LR_SCHEDULERS
        return target.add(registered_name, cls)

    if callable(name) and not isinstance(name, str):
        return add(name.__name__, name)
    return lambda cls: add(name or cls.__name__, cls)


__all__ = [
    "CALLBACKS",
    "DATASETS",
    "LOSSES",
    "LR_SCHEDULERS",
    "LR_WARMUPS",
    "METRICS",
    "MODELS",
    "OPTIMIZERS",
    "TORCH_LR_SCHEDULERS",
    "Registry",
    "UnknownNameError",
    "closest_match",
    "did_you_mean",
    "import_from_path",
    "register_callback",
    "register_dataset",
    "register_loss",
    "register_lr_scheduler",
    "register_lr_warmup",
    "register_metric",
    "register_model",
    "register_optimizer",
    "resolve_callable",
    "unknown_name_message",
]
