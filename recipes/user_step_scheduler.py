"""The ``user_step`` LR schedule: SuperGradients' documentation example, unchanged but for its imports.

``UserStepLRCallback`` multiplies the LR by each factor in ``user_lr_decay_factors`` once the epoch
in ``user_lr_updates`` has ended. Importing this module registers it as "user_step", so
``lr_mode: user_step`` works in training params and recipes (``recipes/digits_custom_scheduler.yaml``
lists it under ``imports``), and its constructor's own parameters become training-param keys.

It ships inside the installed ``recipes`` package because a shipped recipe needs it at run time;
``examples/user_step_scheduler.py`` is a script that trains with it.
"""

# ruff: noqa: UP008  (the class below is SuperGradients' documentation example, kept as written)
from __future__ import annotations

from callbacks import Phase
from registry import register_lr_scheduler
from schedulers import LRCallbackBase


@register_lr_scheduler("user_step")
class UserStepLRCallback(LRCallbackBase):
    def __init__(self, user_lr_updates: list, user_lr_decay_factors: list, **kwargs):
        super(UserStepLRCallback, self).__init__(Phase.TRAIN_EPOCH_END, **kwargs)
        assert len(user_lr_updates) == len(user_lr_decay_factors)
        self.lr_updates = user_lr_updates
        self.lr_decay_factors = user_lr_decay_factors

    def perform_scheduling(self, context):
        curr_lr = self.initial_lr
        for epoch_idx, epoch_decay_rate in zip(self.lr_updates, self.lr_decay_factors):
            if epoch_idx <= context.epoch:
                curr_lr *= epoch_decay_rate
        self.lr = curr_lr
        self.update_lr(context.optimizer, context.epoch, None)

    def is_lr_scheduling_enabled(self, context):
        return self.training_params.lr_warmup_epochs <= context.epoch
