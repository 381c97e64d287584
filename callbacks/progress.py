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

    The loss shown is read from the device every ``refresh_every`` batches only, so the bar
    never forces a host-device sync per batch.

    Args:
        refresh_every: batches between refreshes of the numbers on the bar.
    """

    def __init__(self, refresh_every: int = 20):
        self.refresh_every = refresh_every
        self._bar = None
        self._epoch_started = 0.0

    def on_train_loader_start(self, context: PhaseContext) -> None:
        from tqdm.auto import tqdm

        self._epoch_started = time.perf_counter()
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

    def on_train_batch_end(self, context: PhaseContext) -> None:
        self._bar.update(1)
        if context.batch_idx % self.refresh_every == 0:
            self._bar.set_postfix(
                loss=f"{context.loss.item():.4f}", lr=f"{context.optimizer.param_groups[0]['lr']:.4g}", refresh=False
            )

    def on_train_loader_end(self, context: PhaseContext) -> None:
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
            parts.append(f"skipped steps {context.skipped_steps}")
        parts.append(f"{time.perf_counter() - self._epoch_started:.1f}s")
        if context.is_best:
            parts.append("best")
        tqdm.write(" | ".join(parts), file=sys.stderr)
