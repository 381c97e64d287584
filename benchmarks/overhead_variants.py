"""The variants of ``benchmarks/overhead.py``: a hand-written loop, phasetrain and Lightning.

Each ``run_*`` trains ``setup.net`` on ``setup``'s loaders and returns
``{"window_s": seconds of the steady-state window, "timed_steps": optimizer steps in it,
"valid_accuracy": last validation accuracy, ...}``.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch
from overhead_workloads import (
    MAX_LR,
    MOMENTUM,
    Setup,
    SyncCounter,
    accuracy,
    autocast_dtype,
    new_sync_counter,
    now,
    one_cycle,
    scratch_dir,
    sgd,
)
from torch import nn


class Window:
    """The steady-state window: opened at the second epoch's start, closed after the last validation."""

    def __init__(self, setup: Setup, sync: SyncCounter | None):
        self.setup = setup
        self.sync = sync
        self.started = self.cpu_started = 0.0

    def open(self) -> None:
        """Start the window (after the device has finished the first epoch's work)."""
        self._synchronize()
        self.started, self.cpu_started = now(), time.process_time()
        if self.sync is not None:
            self.sync.start()

    def close(self) -> dict[str, Any]:
        """End it; return the window's length, its steps and the sync counts."""
        self._synchronize()
        result = {
            "window_s": now() - self.started,
            "window_cpu_s": time.process_time() - self.cpu_started,
            "timed_steps": self.setup.timed_steps,
        }
        if self.sync is not None:
            result.update(self.sync.stop())
        return result

    def _synchronize(self) -> None:
        if self.setup.device.type == "cuda":
            torch.cuda.synchronize(self.setup.device)


# ---------------------------------------------------------------------- raw


def run_raw(setup: Setup) -> dict[str, Any]:
    """The hand-written loop: forward, loss, backward, step, zero_grad, OneCycleLR.step(), validation."""
    device, epochs = setup.device, setup.workload.epochs
    net = setup.net.to(device)
    optimizer = sgd(net)
    scheduler = one_cycle(optimizer, setup.total_steps)
    criterion = nn.CrossEntropyLoss()
    metric = accuracy().to(device)
    scaler = torch.amp.GradScaler(device.type, enabled=setup.amp and device.type == "cuda")
    use_scaler = scaler.is_enabled()
    autocast = torch.autocast(device.type, dtype=autocast_dtype(device)) if setup.amp else contextlib.nullcontext()
    sync = new_sync_counter(setup, [])
    window = Window(setup, sync)
    valid_accuracy = float("nan")
    for epoch in range(epochs):
        if epoch == 1:
            window.open()
        count_syncs = sync is not None and epoch >= 1
        net.train()
        for batch_idx, (inputs, target) in enumerate(setup.train_loader):
            if count_syncs:
                sync.at_batch(batch_idx)
            inputs, target = inputs.to(device, non_blocking=True), target.to(device, non_blocking=True)
            with autocast:
                loss = criterion(net(inputs), target)
            if use_scaler:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        if count_syncs:
            sync.at_batch(None)
        net.eval()
        loss_sum = torch.zeros((), device=device)
        with torch.no_grad(), autocast:
            for inputs, target in setup.valid_loader:
                inputs, target = inputs.to(device, non_blocking=True), target.to(device, non_blocking=True)
                preds = net(inputs)
                loss_sum += criterion(preds, target).float()
                metric.update(preds, target)
        valid_loss = (loss_sum / len(setup.valid_loader)).item()
        valid_accuracy = metric.compute().item()
        metric.reset()
    result = window.close()
    return {**result, "valid_accuracy": valid_accuracy, "valid_loss": valid_loss, "lr_mode": "OneCycleLR (torch)"}


# ---------------------------------------------------------------------- phasetrain


def one_cycle_lr_mode(setup: Setup) -> dict[str, Any]:
    """phasetrain's lr_mode for the raw loop's schedule: torch's OneCycleLR stepped after every optimizer step."""
    return {"OneCycleLR": {"max_lr": MAX_LR, "total_steps": setup.total_steps, "phase": "TRAIN_BATCH_STEP"}}


BUILTIN_LR_MODE = "CosineLRScheduler"
"""phasetrain's built-in per-step schedule (a pure function of the clock, written at TRAIN_BATCH_START)."""

PHASETRAIN_VARIANTS: dict[str, dict[str, Any]] = {
    "pt-defaults": {"lr_mode": "one_cycle", "silent_mode": True, "log_steps": None},
    "pt-defaults-bars": {"lr_mode": "one_cycle", "silent_mode": False, "log_steps": None},
    "pt-silent": {"lr_mode": "one_cycle", "silent_mode": True, "log_steps": False},
    "pt-bars": {"lr_mode": "one_cycle", "silent_mode": False, "log_steps": False},
    "pt-bars-log": {"lr_mode": "one_cycle", "silent_mode": False, "log_steps": True},
    "pt-builtin": {"lr_mode": "builtin", "silent_mode": True, "log_steps": False},
}
"""The phasetrain variants: which schedule, whether progress bars show, whether steps.csv is written
(None: the logging params are not given at all, so their defaults apply: steps.csv, TensorBoard event
files when tensorboard is installed, no plots; what a user who sets nothing gets)."""


def phasetrain_params(setup: Setup, variant: str) -> dict[str, Any]:
    """The training params of a phasetrain variant: the raw loop's optimizer, loss, metric and schedule."""
    options = PHASETRAIN_VARIANTS[variant]
    params: dict[str, Any] = {
        "max_epochs": setup.workload.epochs,
        "initial_lr": MAX_LR,
        "optimizer": "SGD",
        "optimizer_params": {"momentum": MOMENTUM},
        "loss": "CrossEntropyLoss",
        "valid_metrics_list": [{"Accuracy": {"task": "multiclass", "num_classes": 10}}],
        "metric_to_watch": "Accuracy",
        "mixed_precision": setup.amp,
        "silent_mode": options["silent_mode"],
        # Checkpoints are off: the raw loop and Lightning (enable_checkpointing=False) save nothing.
        "save_model": False,
        "lr_mode": one_cycle_lr_mode(setup) if options["lr_mode"] == "one_cycle" else BUILTIN_LR_MODE,
    }
    if options["log_steps"] is not None:
        # Logging off but for the steps.csv variant; metrics.csv (one row per epoch) is always written.
        params.update(log_steps=options["log_steps"], tensorboard=False, plots=False)
    return params


def logging_batches(variant: str) -> list:
    """Predicates on the batch index: the batches where the variant's bar or step log reads from the device."""
    import inspect

    from callbacks.loggers import StepLogger

    options = PHASETRAIN_VARIANTS[variant]
    flush_every = inspect.signature(StepLogger).parameters["flush_every"].default
    predicates = []
    # The progress bar reads the loss once per refresh interval (time-based, ProgressBar.refresh_seconds):
    # those reads cannot be told from the batch index and count as outside logging intervals (about 2/s).
    if options["log_steps"] is not False:
        # The step log flushes when flush_every rows are pending (or after flush_seconds) and at each epoch end.
        predicates.append(lambda batch_idx: (batch_idx + 1) % flush_every == 0)
    return predicates


def run_phasetrain(setup: Setup, variant: str) -> dict[str, Any]:
    """``Trainer.train`` with the variant's params, timed by a callback at the window's phases."""
    from callbacks import Callback
    from trainer import Trainer

    sync = new_sync_counter(setup, logging_batches(variant))
    window = Window(setup, sync)
    last_epoch = setup.workload.epochs - 1
    closed: dict[str, Any] = {}

    class WindowTimer(Callback):
        """Opens the window at the second TRAIN_EPOCH_START, closes it at the last VALIDATION_EPOCH_END."""

        def on_train_loader_start(self, context) -> None:
            if context.epoch == 1:
                window.open()

        def on_validation_loader_end(self, context) -> None:
            if context.epoch == last_epoch:
                closed.update(window.close())

    class SyncTracker(Callback):
        """Tells the sync counter which training batch is running."""

        def on_train_batch_start(self, context) -> None:
            if context.epoch >= 1:
                sync.at_batch(context.batch_idx)

        def on_train_loader_end(self, context) -> None:
            sync.at_batch(None)

    params = phasetrain_params(setup, variant)
    params["phase_callbacks"] = [WindowTimer()] + ([SyncTracker()] if sync is not None else [])
    trainer = Trainer(f"bench_{variant}", ckpt_root_dir=scratch_dir(), device=setup.device)
    result = trainer.train(setup.net, params, setup.train_loader, setup.valid_loader)
    return {
        **closed,
        "valid_accuracy": result.valid_metrics["Accuracy"],
        "valid_loss": result.valid_metrics["loss"],
        "lr_mode": repr(params["lr_mode"]),
    }


# ---------------------------------------------------------------------- lightning


def run_lightning(setup: Setup) -> dict[str, Any]:
    """A LightningModule with the same net, optimizer, OneCycleLR (interval "step") and validation metric.

    No logger, no checkpointing, no progress bar, no model summary, no sanity validation.
    """
    import lightning as L

    device = setup.device
    sync = new_sync_counter(setup, [])
    window = Window(setup, sync)
    last_epoch = setup.workload.epochs - 1
    closed: dict[str, Any] = {}
    scores: dict[str, float] = {}

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = setup.net
            self.criterion = nn.CrossEntropyLoss()
            self.valid_accuracy = accuracy()
            self.valid_loss_sum = torch.zeros(())

        def training_step(self, batch, batch_idx):
            inputs, target = batch
            return self.criterion(self.net(inputs), target)

        def on_validation_epoch_start(self) -> None:
            self.valid_loss_sum = torch.zeros((), device=self.device)

        def validation_step(self, batch, batch_idx) -> None:
            inputs, target = batch
            preds = self.net(inputs)
            self.valid_loss_sum += self.criterion(preds, target).float()
            self.valid_accuracy.update(preds, target)

        def on_validation_epoch_end(self) -> None:
            scores["valid_loss"] = (self.valid_loss_sum / len(setup.valid_loader)).item()
            scores["valid_accuracy"] = self.valid_accuracy.compute().item()
            self.valid_accuracy.reset()

        def configure_optimizers(self):
            optimizer = sgd(self.net)
            scheduler = one_cycle(optimizer, setup.total_steps)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    class WindowTimer(L.Callback):
        def on_train_epoch_start(self, trainer, module) -> None:
            if trainer.current_epoch == 1:
                window.open()

        def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
            if sync is not None and trainer.current_epoch >= 1:
                sync.at_batch(batch_idx)

        def on_validation_start(self, trainer, module) -> None:
            if sync is not None:
                sync.at_batch(None)

        def on_validation_end(self, trainer, module) -> None:
            if trainer.current_epoch == last_epoch:
                closed.update(window.close())

    if setup.amp:
        precision = "16-mixed" if device.type == "cuda" else "bf16-mixed"
    else:
        precision = "32-true"
    trainer = L.Trainer(
        max_epochs=setup.workload.epochs,
        accelerator=device.type,
        devices=[device.index or 0] if device.type == "cuda" else 1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[WindowTimer()],
        default_root_dir=scratch_dir(),
    )
    trainer.fit(Module(), setup.train_loader, setup.valid_loader)
    return {**closed, **scores, "lr_mode": "OneCycleLR (torch, interval step)"}
