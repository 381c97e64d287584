"""Guards of the training loop: empty and short loaders, and non-finite training losses.

Non-finite losses (``nonfinite_loss``):

- ``raise`` (default): the loop adds every loss to the epoch's loss sum on the device (it did so
  before, for the mean train loss) and keeps the last losses in a list; the sum is read on the host
  every ``check_every`` batches (every batch on the CPU, where a read costs no sync; every
  ``GPU_CHECK_EVERY`` batches on a GPU), when the GradScaler skipped a step (it synced already) and
  at the end of each epoch, before its validation and checkpoints. A NaN or inf anywhere makes the
  sum non-finite; the list then names the first bad batch, its loss and the LR it was trained with.
  The error comes before the epoch ends, so every checkpoint on disk is the one from before it.
- ``skip``: each loss is read on the host (one sync per batch, the price of deciding per step);
  a step whose window holds a non-finite loss does not happen (gradients dropped, no update, the
  clock does not advance, ``context.nonfinite_skipped_steps`` counts it); after
  ``max_consecutive_nonfinite_skips`` skipped steps in a row, the run stops with the same error.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from callbacks import PhaseContext
from callbacks.errors import NonFiniteLossError, ShortLoaderWarning
from trainer import distributed

GPU_CHECK_EVERY = 64
"""Batches between two host reads of the loss sum on a GPU (one sync each; with a GradScaler also after
each step it skipped, when it has synced already)."""


def mark_raised_during_training(error: BaseException) -> None:
    """Record that ``error`` ended a run after PRE_TRAINING (the command line then treats it as a failure of
    the run, exit status 1, never as bad input)."""
    try:
        error.phasetrain_during_training = True
    except AttributeError:  # an exception type without a __dict__
        pass


def raised_during_training(error: BaseException) -> bool:
    """True when the trainer marked ``error`` as raised after training started."""
    return getattr(error, "phasetrain_during_training", False)


def check_loaders_have_batches(named_loaders: dict[str, Any]) -> None:
    """Every loader given must have at least one batch; checked before the first batch.

    Raises:
        ValueError: names the first empty loader.
    """
    for where, loader in named_loaders.items():
        if loader is not None and len(loader) == 0:
            size = getattr(getattr(loader, "dataset", None), "__len__", None)
            detail = f" (its dataset holds {size()} samples, batch_size {getattr(loader, 'batch_size', '?')})"
            raise ValueError(
                f"{where}: has no batches (len() is 0){detail if size else ''}; give it data, "
                "or lower batch_size / set drop_last=False."
            )


def check_loader_yield(where: str, epoch: int, yielded: int, expected: int) -> None:
    """After a loader ran: warn when it yielded fewer batches than ``len()`` said; error when none.

    Raises:
        RuntimeError: the loader yielded no batch at all.
    """
    if yielded >= expected:
        return
    if yielded == 0:
        raise RuntimeError(f"{where}: yielded no batches in epoch {epoch}, though len() says {expected}.")
    warnings.warn(
        f"{where}: yielded {yielded} batches in epoch {epoch}, but len() says {expected}; the epoch ended early. "
        "The clock counts the steps taken (global_step is not padded), so per-step schedules continue from there.",
        ShortLoaderWarning,
        stacklevel=3,
    )


class TrainLossGuard:
    """Sums an epoch's training losses on the device and stops or skips on a non-finite one.

    Args:
        policy: ``"raise"`` or ``"skip"`` (training param ``nonfinite_loss``).
        max_consecutive_skips: with ``skip``, stop after this many skipped steps in a row.
        device: the loop's device.
        info: the distributed setup (a skip is decided on all ranks together).
    """

    def __init__(self, policy: str, max_consecutive_skips: int, device: torch.device, info: Any):
        self.skips = policy == "skip"
        self.max_consecutive_skips = max_consecutive_skips
        self.device = device
        self.info = info
        # Under torchrun the ranks must stop together: only the epoch-end check (a collective) decides.
        self.check_every = None if info.is_distributed else (1 if device.type == "cpu" else GPU_CHECK_EVERY)
        self.batches = 0
        self.counted_batches = 0
        self.consecutive_skips = 0
        self._losses: list[torch.Tensor] = []
        self._lrs: list[float] = []
        self._first_batch = 0
        self._bad_in_window: tuple[int, float, float] | None = None

    def start_epoch(self, context: PhaseContext) -> torch.Tensor:
        """Reset the epoch's counts; return the zero loss sum on the device."""
        self.batches = self.counted_batches = 0
        self._losses, self._lrs, self._first_batch = [], [], 0
        context.nonfinite_skipped_steps = 0
        return torch.zeros((), device=self.device)

    def add_loss(self, loss_sum: torch.Tensor, context: PhaseContext) -> torch.Tensor:
        """Add this batch's loss to the sum (a skipped batch's loss is left out); return the sum."""
        loss = context.loss.detach().float()
        self.batches += 1
        if self.skips:
            finite = math.isfinite(loss.item())
            finite = not distributed.any_rank(not finite, self.device, self.info)
            if not finite:
                if self._bad_in_window is None:
                    self._bad_in_window = (context.batch_idx, loss.item(), _lr_of(context))
                return loss_sum
        loss_sum += loss
        self.counted_batches += 1
        if self.skips:
            return loss_sum
        if self.check_every == 1:  # the CPU: reading the sum syncs nothing; no list needed
            if not math.isfinite(loss_sum.item()):
                self._losses, self._lrs, self._first_batch = [loss], [_lr_of(context)], context.batch_idx
                self._raise(context)
            return loss_sum
        self._losses.append(loss)
        self._lrs.append(context.optimizer.param_groups[0]["lr"])
        if self.check_every is not None and len(self._losses) >= self.check_every:
            self.check(loss_sum, context)
        return loss_sum

    def step_allowed(self, context: PhaseContext) -> bool:
        """False when the step's window had a non-finite loss (``skip``): the gradients are dropped.

        Raises:
            NonFiniteLossError: the ``max_consecutive_nonfinite_skips``-th skipped step in a row.
        """
        bad, self._bad_in_window = self._bad_in_window, None
        if bad is None:
            self.consecutive_skips = 0
            return True
        self.consecutive_skips += 1
        context.nonfinite_skipped_steps += 1
        if self.consecutive_skips >= self.max_consecutive_skips:
            batch_idx, value, lr = bad
            raise NonFiniteLossError(
                f"train loop: {self.consecutive_skips} optimizer steps in a row had a non-finite loss "
                f"(max_consecutive_nonfinite_skips {self.max_consecutive_skips}); the last: epoch {context.epoch}, "
                f"batch {batch_idx}, loss {value}, LR in force {lr:.6g}. Stopped before this epoch's checkpoint; "
                f"every checkpoint on disk is as it was before epoch {context.epoch}."
            )
        if context.scaler.is_enabled():  # forget an unscale_ of this step (gradient clipping) as update() would
            context.scaler.update(context.scaler.get_scale())
        return False

    def check(self, loss_sum: torch.Tensor, context: PhaseContext) -> None:
        """Read the loss sum on the host (one sync); raise naming the first non-finite loss.

        Raises:
            NonFiniteLossError: with ``raise``, a loss since the last check was NaN or inf.
        """
        if self.skips:
            return
        if math.isfinite(loss_sum.item()):  # 0.5 us on the CPU; torch.isfinite() + bool() costs 7 us
            self._first_batch += len(self._losses)
            self._losses, self._lrs = [], []
            return
        self._raise(context)

    def end_epoch(self, loss_sum: torch.Tensor, context: PhaseContext) -> None:
        """The check at the end of the epoch's batches, before its validation and checkpoints
        (under torchrun: on every rank together).

        Raises:
            NonFiniteLossError: with ``raise``, a loss of the epoch was NaN or inf on any rank.
        """
        if self.skips:
            return
        finite_here = math.isfinite(loss_sum.item())
        if distributed.any_rank(not finite_here, self.device, self.info) and finite_here:
            raise NonFiniteLossError(
                f"train loop: a training loss of epoch {context.epoch} was NaN or inf on another rank; stopped before "
                f"this epoch's checkpoint; every checkpoint on disk is as it was before epoch {context.epoch}."
            )
        self.check(loss_sum, context)

    def _raise(self, context: PhaseContext) -> None:
        values = torch.stack(self._losses).tolist()
        first = next((index for index, value in enumerate(values) if not math.isfinite(value)), None)
        if first is None:
            what = f"the sum of the training losses of epoch {context.epoch} overflowed to {float('inf')}"
        else:
            what = (
                f"the training loss of epoch {context.epoch}, batch {self._first_batch + first} is {values[first]} "
                f"(LR in force {self._lrs[first]:.6g}"
                f"{' in param group 0' if len(context.optimizer.param_groups) > 1 else ''})"
            )
        raise NonFiniteLossError(
            f"train loop: {what}. Stopped before this epoch's checkpoint; every checkpoint on disk is as it was "
            f"before epoch {context.epoch}. Set nonfinite_loss: skip to skip such batches instead."
        )


def _lr_of(context: PhaseContext) -> float:
    return context.optimizer.param_groups[0]["lr"]
