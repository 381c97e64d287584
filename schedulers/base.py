"""LRCallbackBase: the base of every LR schedule and warmup callback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from callbacks import Phase, PhaseCallback, PhaseContext


class LRCallbackBase(PhaseCallback):
    """A phase callback that writes learning rates into the optimizer's param groups.

    Subclasses implement ``perform_scheduling(context)`` (compute ``self.lr`` and call
    ``update_lr``) and ``is_lr_scheduling_enabled(context)``. The trainer constructs the class
    named by ``training_params["lr_mode"]`` with every training param as a keyword argument,
    plus the arguments below.

    Args:
        phase: the phase at which ``perform_scheduling`` runs.
        initial_lr: ``training_params.initial_lr``: a float, or a mapping
            ``{parameter-name prefix: lr, "default": lr}`` (one param group per entry).
        update_param_groups: when true and the net defines ``update_param_groups``, that method
            computes the param groups instead of writing ``self.lr`` into each.
        train_loader_len: batches per epoch of the train loader.
        net: the model.
        training_params: all training params (readable by attribute).
    """

    def __init__(
        self,
        phase: Phase | str,
        initial_lr: float | Mapping[str, float],
        update_param_groups: bool,
        train_loader_len: int,
        net: torch.nn.Module,
        training_params: Any,
        **kwargs: Any,
    ):
        super().__init__(phase)
        self.initial_lr = dict(initial_lr) if isinstance(initial_lr, Mapping) else initial_lr
        self.lr = self.initial_lr
        self.update_param_groups = update_param_groups
        self.train_loader_len = train_loader_len
        self.net = net
        self.training_params = training_params

    def __call__(self, context: PhaseContext) -> None:
        if self.is_lr_scheduling_enabled(context):
            self.perform_scheduling(context)

    def perform_scheduling(self, context: PhaseContext) -> None:
        """Compute ``self.lr`` for this moment of the run and write it with ``update_lr``."""
        raise NotImplementedError(f"{type(self).__name__} must implement perform_scheduling(context).")

    def is_lr_scheduling_enabled(self, context: PhaseContext) -> bool:
        """Whether ``perform_scheduling`` runs at this call."""
        raise NotImplementedError(f"{type(self).__name__} must implement is_lr_scheduling_enabled(context).")

    def update_lr(self, optimizer: torch.optim.Optimizer, epoch: int, batch_idx: int | None) -> None:
        """Write ``self.lr`` into the optimizer's param groups.

        ``self.lr`` is a float for every group, or a mapping from group name to LR. When
        ``update_param_groups`` is set and the (unwrapped) net defines
        ``update_param_groups(param_groups, lr, epoch, iter, training_params, train_loader_len)``,
        the net computes the groups instead.
        """
        if self.update_param_groups:
            net = getattr(self.net, "module", self.net)
            if hasattr(net, "update_param_groups"):
                optimizer.param_groups = net.update_param_groups(
                    optimizer.param_groups, self.lr, epoch, batch_idx, self.training_params, self.train_loader_len
                )
                return
        # Runs at every optimizer step: one type test, not one per group.
        lr = self.lr
        if isinstance(lr, Mapping):
            for group in optimizer.param_groups:
                group["lr"] = lr[group["name"]]
        else:
            for group in optimizer.param_groups:
                group["lr"] = lr
