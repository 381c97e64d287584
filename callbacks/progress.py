"""Progress bars and the one-line epoch summary."""

from __future__ import annotations

import sys
import time
from typing import Any

from callbacks.base import Callback
from callbacks.context import PhaseContext


def format_metrics(metrics: dict[str, Any]) -> str:
    """``"loss 0.1234 Accuracy 0.97"``; a per-class metric shows as ``"Accuracy [0.9, 1]"``."""
    return " ".join(f"{name} {_format_value(value)}" for name, value in metrics.items())


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(item) for item in value) + "]"
    return f"{value:.4g}" if isinstance(value, (int, float)) else str(value)


class ProgressBar(Callback):
    """A tqdm bar per epoch showing the loss and the LR, plus a summary line per epoch.

    The numbers on the bar are refreshed at most every ``refresh_seconds``: then the LR is read
    when the next optimizer step opens (after the schedules have written it) and that step's loss
    at its end, so the bar always shows a loss beside the LR it was trained with. The batch count
    reaches the bar at those refreshes too (tqdm's ``update`` costs about 0.5 us). Between refreshes a
    batch costs a counter increment and a clock read; the loss is read from the device only at a
    refresh, so the bar never forces a host-device sync per batch.

    Args:
        refresh_seconds: least time between two refreshes of the numbers on the bar.

    Attributes:
        shown: what the bar shows now: ``{"step": optimizer step index, "loss": float, "lr": float}``.
    """

    def __init__(self, refresh_seconds: float = 0.5):
        self.refresh_seconds = refresh_seconds
        self.shown: dict[str, float] = {}
        self._bar = None
        self._epoch_started = 0.0
        self._next_refresh = 0.0
        self._shown_lr: float | None = None
        self._batches_not_shown = 0

    def on_train_loader_start(self, context: PhaseContext) -> None:
        from tqdm.auto import tqdm

        self._epoch_started = time.perf_counter()
        self._next_refresh = 0.0
        self._shown_lr = None
        self._batches_not_shown = 0
        total = len(context.train_loader)
        max_batches = context.training_params.max_train_batches
        if max_batches is not None:
            total = min(total, max_batches)
        self._bar = tqdm(
            total=total,
            desc=f"epoch {context.epoch + 1}/{context.max_epochs}",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def on_train_batch_start(self, context: PhaseContext) -> None:
        if context.opens_step and self._shown_lr is None and time.perf_counter() >= self._next_refresh:
            self._shown_lr = context.optimizer.param_groups[0]["lr"]

    def on_train_batch_end(self, context: PhaseContext) -> None:
        self._batches_not_shown += 1
        if self._shown_lr is not None and context.closes_step:
            # The loss of the step whose LR was read when it opened: both describe the same step.
            step = context.global_step - 1 if context.optimizer_stepped else context.global_step
            loss = context.loss_value if context.loss_value is not None else context.loss.item()
            self.shown = {"step": step, "loss": loss, "lr": self._shown_lr}
            self._bar.set_postfix(loss=f"{loss:.4f}", lr=f"{self._shown_lr:.4g}", refresh=False)
            self._bar.update(self._batches_not_shown)
            self._batches_not_shown = 0
            self._shown_lr = None
            self._next_refresh = time.perf_counter() + self.refresh_seconds

    def on_train_loader_end(self, context: PhaseContext) -> None:
        self._bar.update(self._batches_not_shown)
        self._batches_not_shown = 0
        self._bar.close()
        if not context.validates_this_epoch:
            self._summary(context)

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self._summary(context)

    def on_training_end(self, context: PhaseContext) -> None:
        if self._bar is not None:
            self._bar.close()

    def _summary(self, context: PhaseContext) -> None:
        from tqdm.auto import tqdm

        parts = [f"epoch {context.epoch + 1}/{context.max_epochs}", f"train {format_metrics(context.train_metrics)}"]
        if context.validates_this_epoch:
            parts.append(f"valid {format_metrics(context.valid_metrics)}")
        parts.append(f"lr {context.optimizer.param_groups[0]['lr']:.4g}")
        if context.skipped_steps:
            nonfinite = context.nonfinite_skipped_steps
            parts.append(
                f"skipped steps {context.skipped_steps}" + (f" ({nonfinite} non-finite loss)" if nonfinite else "")
            )
        parts.append(f"{time.perf_counter() - self._epoch_started:.1f}s")
        if context.is_best:
            parts.append("best")
        tqdm.write(" | ".join(parts), file=sys.stderr)
