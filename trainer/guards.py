"""Guards of the training loop: empty and short loaders, and non-finite training losses.

Non-finite losses (``nonfinite_loss``):

- ``raise`` (default): on the CPU, where reading a loss costs no sync, each batch's loss is read
  once (``item()``), added to the epoch's sum (a float64 on the host) and checked: a NaN or inf
  stops the run in its own batch. On a GPU the loop adds every loss to the epoch's loss sum on the
  device and keeps the last losses in a list; the sum is read on the host every ``GPU_CHECK_EVERY``
  batches, when the GradScaler skipped a step (it synced already) and at the end of each epoch,
  before its validation and checkpoints. A NaN or inf anywhere makes the sum non-finite; the list
  then names the first bad batch, its loss and the LR it was trained with. Under torchrun only the
  epoch-end check decides (all ranks together). The error comes before the epoch ends, so every
  checkpoint on disk is the one from before it.
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
    """Sums an epoch's training losses and stops or skips on a non-finite one.

    Where reading a loss on the host syncs nothing (the CPU) or the policy reads every loss anyway
    (``skip``), each loss is read once and summed as a Python float (float64): a non-finite one is
    seen in its own batch. On a GPU with ``raise`` the losses are summed on the device and the sum
    is read every ``check_every`` batches (see the module docstring).

    Args:
        policy: ``"raise"`` or ``"skip"`` (training param ``nonfinite_loss``).
        max_consecutive_skips: with ``skip``, stop after this many skipped steps in a row.
        device: the loop's device.
        info: the distributed setup (a skip is decided on all ranks together).

    Attributes:
        skips: the policy is ``skip`` (``step_allowed`` decides each step).
        loss_sum: the sum of this epoch's counted losses: a float when read on the host, else a
            0-d float32 tensor on the device.
        batches: batches seen this epoch.
        counted_batches: batches whose loss is in ``loss_sum`` (``skip`` leaves non-finite ones out).
    """

    def __init__(self, policy: str, max_consecutive_skips: int, device: torch.device, info: Any):
        self.skips = policy == "skip"
        self.max_consecutive_skips = max_consecutive_skips
        self.device = device
        self.info = info
        self.on_host = self.skips or device.type == "cpu"
        # Under torchrun the ranks must stop together: only the epoch-end check (a collective) decides.
        self.check_every = None if info.is_distributed else (1 if self.on_host else GPU_CHECK_EVERY)
        self.loss_sum: float | torch.Tensor = 0.0
        self.batches = 0
        self.counted_batches = 0
        self.consecutive_skips = 0
        self._losses: list[torch.Tensor] = []
        self._lrs: list[float] = []
        self._first_batch = 0
        self._first_bad: tuple[int, float, float] | None = None
        """(batch_idx, loss, LR in force) of the epoch's first non-finite loss read on the host."""
        self._bad_in_window: tuple[int, float, float] | None = None

    def start_epoch(self, context: PhaseContext) -> None:
        """Reset the epoch's counts and its loss sum."""
        self.batches = self.counted_batches = 0
        self.loss_sum = 0.0 if self.on_host else torch.zeros((), device=self.device)
        self._losses, self._lrs, self._first_batch, self._first_bad = [], [], 0, None
        context.nonfinite_skipped_steps = 0
        context.loss_value = None

    def add_loss(self, context: PhaseContext) -> None:
        """Add this batch's loss to the sum (``skip`` leaves a non-finite one out and marks its step).

        Raises:
            NonFiniteLossError: with ``raise`` (one process), a non-finite loss read on the host now,
                or, on a GPU, one since the last read of the sum.
        """
        self.batches += 1
        if not self.on_host:
            self._add_on_device(context)
            return
        # No sync on the CPU; with skip, the read that decides the step. Callbacks reuse it (loss_value).
        value = context.loss_value = context.loss.item()
        finite = math.isfinite(value)
        if self.skips:
            finite = not distributed.any_rank(not finite, self.device, self.info)
            if not finite:
                if self._bad_in_window is None:
                    self._bad_in_window = (context.batch_idx, value, _lr_of(context))
                return
        self.loss_sum += value
        self.counted_batches += 1
        if not finite and self._first_bad is None:
            self._first_bad = (context.batch_idx, value, _lr_of(context))
            if self.check_every:
                self._raise(context)

    def _add_on_device(self, context: PhaseContext) -> None:
        loss = context.loss.detach().float()
        self.loss_sum += loss
        self.counted_batches += 1
        self._losses.append(loss)
        self._lrs.append(_lr_of(context))
        if self.check_every is not None and len(self._losses) >= self.check_every:
            self.check(context)

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

    def check(self, context: PhaseContext) -> None:
        """Read the loss sum on the host (one sync on a GPU); raise naming the first non-finite loss.

        Raises:
            NonFiniteLossError: with ``raise``, a loss since the last check was NaN or inf.
        """
        if self.skips:
            return
        if math.isfinite(float(self.loss_sum)):  # 0.5 us for a tensor on the CPU; torch.isfinite() + bool() costs 7 us
            self._first_batch += len(self._losses)
            self._losses, self._lrs = [], []
            return
        self._raise(context)

    def end_epoch(self, context: PhaseContext) -> None:
        """The check at the end of the epoch's batches, before its validation and checkpoints
        (under torchrun: on every rank together).

        Raises:
            NonFiniteLossError: with ``raise``, a loss of the epoch was NaN or inf on any rank.
        """
        if self.skips:
            return
        finite_here = math.isfinite(float(self.loss_sum))
        if distributed.any_rank(not finite_here, self.device, self.info) and finite_here:
            raise NonFiniteLossError(
                f"train loop: a training loss of epoch {context.epoch} was NaN or inf on another rank; stopped before "
                f"this epoch's checkpoint; every checkpoint on disk is as it was before epoch {context.epoch}."
            )
        self.check(context)

    def _raise(self, context: PhaseContext) -> None:
        first_bad = self._first_bad
        if first_bad is None and self._losses:
            values = torch.stack(self._losses).tolist()
            first = next((index for index, value in enumerate(values) if not math.isfinite(value)), None)
            if first is not None:
                first_bad = (self._first_batch + first, values[first], self._lrs[first])
        if first_bad is None:
            what = f"the sum of the training losses of epoch {context.epoch} overflowed to {float('inf')}"
        else:
            batch_idx, value, lr = first_bad
            what = (
                f"the training loss of epoch {context.epoch}, batch {batch_idx} is {value} (LR in force {lr:.6g}"
                f"{' in param group 0' if len(context.optimizer.param_groups) > 1 else ''})"
            )
        raise NonFiniteLossError(
            f"train loop: {what}. Stopped before this epoch's checkpoint; every checkpoint on disk is as it was "
            f"before epoch {context.epoch}. Set nonfinite_loss: skip to skip such batches instead."
        )


def _lr_of(context: PhaseContext) -> float:
    return context.optimizer.param_groups[0]["lr"]
