"""Stochastic weight averaging: torch's ``SWALR`` owns the LR from ``swa.start_epoch`` and an
``AveragedModel`` averages the epoch-end weights; ``update_bn``, validation and ``ckpt_swa.pth`` at the end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from callbacks.base import Callback
from callbacks.checkpoint import atomic_save, unwrap_model
from callbacks.context import PhaseContext

SWA_FILE = "ckpt_swa.pth"
SWA_ANNEAL_STRATEGIES = ("cos", "linear")


class SWALRSchedule(Callback):
    """From epoch ``start_epoch`` on, the LR is torch's ``SWALR``.

    ``SWALR`` is built at ``TRAIN_EPOCH_START`` of ``start_epoch``, after the run's LR callbacks
    have run at that phase, on the LR the param groups hold then, and is stepped at every
    ``TRAIN_EPOCH_END`` from there, as in torch's loop (``swa_scheduler.step()`` after each epoch).
    The run's ``lr_mode`` and warmup keep running but no longer decide the LR: the trainer places this
    callback after them, and from ``start_epoch`` it writes SWALR's LR back at every phase where they
    may write one (``TRAIN_EPOCH_START``, ``TRAIN_BATCH_START`` of each optimizer step, and before
    its own step at ``TRAIN_EPOCH_END``), so every optimizer step uses SWALR's value.

    Args:
        optimizer: the run's optimizer.
        start_epoch: first SWA epoch (from 0).
        swa_lr: SWALR's target LR.
        anneal_epochs: SWALR's ``anneal_epochs`` (None: torch's default).
        anneal_strategy: "cos" or "linear" (None: torch's default).
    """

    checkpoint_key = "swa_lr_state"

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        start_epoch: int,
        swa_lr: float,
        anneal_epochs: int | None = None,
        anneal_strategy: str | None = None,
    ):
        self.optimizer = optimizer
        self.start_epoch = start_epoch
        self.swa_lr = swa_lr
        self.options = {
            key: value
            for key, value in {"anneal_epochs": anneal_epochs, "anneal_strategy": anneal_strategy}.items()
            if value is not None
        }
        self.scheduler: SWALR | None = None
        self._restored: dict[str, Any] | None = None

    def on_train_loader_start(self, context: PhaseContext) -> None:
        if context.epoch < self.start_epoch:
            return
        if self.scheduler is None:
            self.scheduler = SWALR(self.optimizer, swa_lr=self.swa_lr, **self.options)
            if self._restored:  # resumed after start_epoch: continue the saved SWALR
                self.scheduler.load_state_dict(dict(self._restored))
        self._write_lr()

    def on_train_batch_start(self, context: PhaseContext) -> None:
        if self.scheduler is not None and context.opens_step:
            self._write_lr()

    def on_train_loader_end(self, context: PhaseContext) -> None:
        if self.scheduler is not None:
            self._write_lr()  # SWALR derives its next value from group["lr"]: undo a schedule's epoch-end step
            self.scheduler.step()

    def owns_lr_before(self, epoch: int) -> bool:
        """True when the optimizer step before epoch ``epoch`` (a resume point) used SWALR's LR."""
        return epoch > self.start_epoch

    def _write_lr(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_last_lr()):
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        """SWALR's counters and last LRs (empty before ``start_epoch``)."""
        if self.scheduler is None:
            return {}
        return {
            key: value
            for key, value in self.scheduler.state_dict().items()
            if isinstance(value, (bool, int, float, str, list))
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restored = dict(state)


class SWAModel(Callback):
    """Averages the net's parameters into an ``AveragedModel`` after every epoch from ``start_epoch``.

    ``AveragedModel`` copies the net when this callback is built; at each ``TRAIN_EPOCH_END`` from
    ``start_epoch`` it is fed the net (``update_parameters``: the running mean of the epoch-end
    parameters; buffers are not averaged). At ``POST_TRAINING``, when the last epoch's weights were
    averaged (not after an exception or an interrupted epoch), the BatchNorm statistics are recomputed
    with ``update_bn`` on the train loader, the averaged model is validated with ``evaluate`` (both with
    the global RNG left as it was) and saved as ``ckpt_swa.pth`` (``net``, ``valid_metrics``,
    ``n_averaged``, ``epoch``, ``global_step``); its metrics go to ``context.swa_metrics``.

    Args:
        net: the model (unwrapped from DistributedDataParallel here).
        start_epoch: first epoch whose end weights are averaged (from 0).
        ckpt_dir: the run directory.
        evaluate: function of a module returning its validation metrics, or None (no valid loader).
    """

    checkpoint_key = "swa_model"

    def __init__(
        self,
        net: torch.nn.Module,
        start_epoch: int,
        ckpt_dir: str,
        evaluate: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
    ):
        self.net = unwrap_model(net)
        self.start_epoch = start_epoch
        self.ckpt_dir = Path(ckpt_dir)
        self.evaluate = evaluate
        self.averaged = AveragedModel(self.net)

    def on_train_loader_end(self, context: PhaseContext) -> None:
        if context.epoch >= self.start_epoch:
            self.averaged.update_parameters(self.net)

    def on_training_end(self, context: PhaseContext) -> None:
        averaged = int(self.averaged.n_averaged)
        if context.exception is not None or averaged == 0 or averaged != context.epoch - self.start_epoch + 1:
            return
        # Every DataLoader iterator draws its seed from the global RNG: the run's RNG is left as it was.
        with torch.random.fork_rng(devices=[]):
            update_bn(context.train_loader, self.averaged, device=context.device)
            metrics = self.evaluate(self.averaged.module) if self.evaluate is not None else {}
        context.swa_metrics = dict(metrics)
        if context.is_rank_zero:
            record = {
                "net": self.averaged.module.state_dict(),
                "valid_metrics": dict(metrics),
                "n_averaged": averaged,
                "epoch": context.epoch + 1,
                "global_step": context.global_step,
            }
            atomic_save(record, self.ckpt_dir / SWA_FILE)

    def state_dict(self) -> dict[str, Any]:
        """The ``AveragedModel``'s state dict (``module.*`` and ``n_averaged``)."""
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.averaged.load_state_dict(state)
