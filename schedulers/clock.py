"""The schedule clock: how optimizer steps, epochs, warmup and cooldown relate.

Notation (docs/lr_schedules.md uses the same):
    e  epoch index from 0;  k  index of the optimizer step about to run, from 0
    A  batch_accumulate;    S  optimizer steps per epoch = ceil(min(len(loader), max_train_batches) / A)
    E  max_epochs;          N  = E * S, optimizer steps of the run
    W  warmup length in steps (lr_warmup_epochs * S, or lr_warmup_steps)
    C  cooldown length in steps (lr_cooldown_epochs * S)
    t  = k - W, the main schedule's own clock, over T = N - W - C steps
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any


def steps_per_epoch(num_batches: int, max_train_batches: int | None, batch_accumulate: int) -> int:
    """S: optimizer steps per epoch. The last, shorter accumulation window also steps."""
    if max_train_batches is not None:
        num_batches = min(num_batches, max_train_batches)
    return math.ceil(num_batches / batch_accumulate)


_EVERY_BATCH_STEPS = (True, True, 1)


def accumulation_window(batch_idx: int, num_batches: int, batch_accumulate: int) -> tuple[bool, bool, int]:
    """Where a batch stands in its accumulation window, as the training loop (and the preview) see it.

    Returns:
        (opens_step, closes_step, window_size): whether the batch is the first micro-batch of an
        optimizer step, whether the step follows its backward, and how many batches the window
        holds (the last window of an epoch may be shorter).
    """
    if batch_accumulate == 1:
        return _EVERY_BATCH_STEPS
    position = batch_idx % batch_accumulate
    window_size = min(batch_accumulate, num_batches - (batch_idx - position))
    return position == 0, position + 1 == window_size, window_size


def validates_after_epoch(epoch: int, max_epochs: int, run_validation_freq: int, has_valid_loader: bool) -> bool:
    """Whether the loop validates after ``epoch``: every run_validation_freq epochs and after the last."""
    return has_valid_loader and ((epoch + 1) % run_validation_freq == 0 or epoch + 1 == max_epochs)


@dataclass(frozen=True)
class ScheduleClock:
    """The fixed lengths of a run's schedule, in optimizer steps and epochs.

    Attributes:
        steps_per_epoch: S.
        max_epochs: E.
        warmup_epochs: lr_warmup_epochs (0 for a per-step warmup).
        warmup_steps: W, in optimizer steps.
        cooldown_epochs: lr_cooldown_epochs.
    """

    steps_per_epoch: int
    max_epochs: int
    warmup_epochs: int = 0
    warmup_steps: int = 0
    cooldown_epochs: int = 0

    @classmethod
    def from_params(cls, training_params: Any, steps_per_epoch: int) -> ScheduleClock:
        """Build the clock from training params (``lr_warmup_epochs``, ``lr_warmup_steps``, ...)."""
        warmup_epochs = int(training_params.lr_warmup_epochs or 0)
        warmup_steps = int(training_params.lr_warmup_steps or 0)
        return cls(
            steps_per_epoch=steps_per_epoch,
            max_epochs=int(training_params.max_epochs),
            warmup_epochs=warmup_epochs,
            warmup_steps=warmup_epochs * steps_per_epoch if warmup_epochs else warmup_steps,
            cooldown_epochs=int(training_params.lr_cooldown_epochs or 0),
        )

    @property
    def total_steps(self) -> int:
        """N = E * S."""
        return self.max_epochs * self.steps_per_epoch

    @property
    def cooldown_steps(self) -> int:
        """C = lr_cooldown_epochs * S."""
        return self.cooldown_epochs * self.steps_per_epoch

    @cached_property  # read at every optimizer step by the per-step schedules
    def main_steps(self) -> int:
        """T = N - W - C: the length of the main schedule."""
        return self.total_steps - self.warmup_steps - self.cooldown_steps

    @property
    def main_epochs(self) -> int:
        """Epochs of the main schedule: E - lr_warmup_epochs - lr_cooldown_epochs."""
        return self.max_epochs - self.warmup_epochs - self.cooldown_epochs

    def in_warmup(self, global_step: int) -> bool:
        """True while optimizer step ``global_step`` belongs to the warmup."""
        return global_step < self.warmup_steps

    def in_cooldown(self, global_step: int) -> bool:
        """True for the optimizer steps of the last lr_cooldown_epochs epochs."""
        return global_step >= self.total_steps - self.cooldown_steps

    def main_position(self, global_step: int) -> int:
        """t for step k: k - W, held at T - 1 through the cooldown."""
        return min(global_step - self.warmup_steps, self.main_steps - 1)
