"""Snapshot ensembles: save the model at the end of every cosine cycle (and after the last epoch)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from callbacks.base import Callback
from callbacks.checkpoint import atomic_save, unwrap_model
from callbacks.context import PhaseContext

SNAPSHOT_PATTERN = "ckpt_snapshot_epoch{epoch}.pth"
"""File name of the snapshot after epoch N (counted from 1)."""


def schedule_restart_epochs(lr_callbacks: Iterable[Callback]) -> tuple[list[int], bool]:
    """The epochs (from 1) after which any LR callback's schedule restarts.

    An LR callback takes part by defining ``restart_epochs() -> list[int]``.

    Returns:
        (sorted union of the restart epochs, whether any callback defines ``restart_epochs``).
    """
    epochs: set[int] = set()
    defined = False
    for callback in lr_callbacks:
        restart_epochs = getattr(callback, "restart_epochs", None)
        if callable(restart_epochs):
            defined = True
            epochs.update(int(epoch) for epoch in restart_epochs())
    return sorted(epochs), defined


def snapshot_epochs_of(
    lr_callbacks: Iterable[Callback], max_epochs: int, explicit: Sequence[int] | None, lr_mode: object = None
) -> list[int]:
    """The snapshot epochs (from 1): ``explicit`` exactly when given, else the restarts plus the last epoch.

    Raises:
        ValueError: no explicit list and the schedule has no warm restart within the run.
    """
    if explicit is not None:
        return sorted({int(epoch) for epoch in explicit})
    restarts, defined = schedule_restart_epochs(lr_callbacks)
    restarts = [epoch for epoch in restarts if epoch < max_epochs]
    if not restarts:
        hint = (
            ""
            if defined
            else " (warm restarts come from lr_mode CosineWarmRestartsLRScheduler, "
            "{CosineAnnealingWarmRestarts: {...}} or CosineRestartLR segments)"
        )
        raise ValueError(
            f"training_params: key 'snapshot_ensemble' is true, but lr_mode {lr_mode!r} has no warm restart within "
            f"the {max_epochs} epochs{hint}; a snapshot ensemble needs a schedule with warm restarts, or an explicit "
            "'snapshot_epochs: [...]' (epochs counted from 1)."
        )
    return [*restarts, max_epochs]


class SnapshotSaver(Callback):
    """Writes ``ckpt_snapshot_epoch{N}.pth`` (``net``, ``epoch`` = N, ``global_step``, ``valid_metrics``)
    at the end of each epoch N (from 1) in ``epochs``, after validation when that epoch validates.

    The files hold the net's own weights (not the EMA's) and load with ``torch.load(weights_only=True)``.
    Only rank 0 writes.

    Args:
        ckpt_dir: the run directory.
        epochs: the snapshot epochs, counted from 1.
    """

    def __init__(self, ckpt_dir: str, epochs: Sequence[int]):
        self.ckpt_dir = Path(ckpt_dir)
        self.epochs = sorted(set(epochs))

    def on_train_loader_end(self, context: PhaseContext) -> None:
        if not context.validates_this_epoch:
            self._save(context)

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self._save(context)

    def _save(self, context: PhaseContext) -> None:
        epoch = context.epoch + 1
        if epoch not in self.epochs or not context.is_rank_zero:
            return
        record = {
            "net": unwrap_model(context.net).state_dict(),
            "epoch": epoch,
            "global_step": context.global_step,
            "valid_metrics": dict(context.valid_metrics) if context.validates_this_epoch else {},
        }
        atomic_save(record, self.ckpt_dir / SNAPSHOT_PATTERN.format(epoch=epoch))
