"""PhaseContext: what a callback sees at each phase."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class PhaseContext:
    """The state of the run, handed to every callback at every phase.

    The trainer owns this object and updates it in place; callbacks read it and may set
    ``stop_training``. "Valid" below says from which phase a field holds a meaningful value.

    Attributes:
        experiment_name: name of the run. Valid always.
        ckpt_dir: directory of this run's checkpoints and logs. Valid always.
        device: the device the loop runs on. Valid always.
        training_params: the resolved training params (a ``trainer.params.TrainingParams`` dict,
            also readable by attribute). Valid always.
        net: the model being trained (wrapped in DistributedDataParallel when distributed).
            Valid always.
        optimizer: the optimizer. Valid always.
        criterion: the loss module. Valid always.
        scaler: the torch.amp.GradScaler (disabled unless mixed precision on CUDA). Valid always.
        train_loader: the training DataLoader. Valid always.
        valid_loader: the validation DataLoader or None. Valid always.
        max_epochs: epochs the run trains for. Valid always.
        steps_per_epoch: optimizer steps per epoch, ceil(batches per epoch / batch_accumulate).
            Valid always.
        total_steps: optimizer steps of the whole run, max_epochs * steps_per_epoch. Valid always.
        batch_accumulate: micro-batches per optimizer step. Valid always.
        epoch: index of the current epoch, from 0. Valid from TRAIN_EPOCH_START; during
            PRE_TRAINING it is the first epoch to run (non-zero after resume).
        batch_idx: index of the current batch within its loader, from 0. Valid in batch phases.
        global_step: optimizer steps completed so far in the run. At TRAIN_BATCH_START it is
            the index of the next optimizer step; at TRAIN_BATCH_STEP it already counts the
            step just taken.
        opens_step: True at TRAIN_BATCH_START when this batch is the first micro-batch of an
            optimizer step's accumulation window. Valid in train batch phases.
        closes_step: True when this batch ends an accumulation window (an optimizer step is
            attempted after its backward). Valid in train batch phases.
        optimizer_stepped: True when an optimizer step happened in this batch (False when the
            GradScaler skipped it for inf/NaN gradients, or ``nonfinite_loss: skip`` for a NaN/inf
            loss). Valid from TRAIN_BATCH_STEP to TRAIN_BATCH_END.
        skipped_steps: optimizer steps skipped this epoch, by the GradScaler (inf/NaN gradients) or for a
            non-finite loss (``nonfinite_loss: skip``). Valid in train phases.
        nonfinite_skipped_steps: of those, the steps skipped for a NaN or inf loss (``nonfinite_loss:
            skip``; the step's gradients were dropped, global_step did not advance). Valid in train phases.
        inputs: the batch inputs on the device. Valid in batch phases.
        target: the batch targets on the device. Valid in batch phases.
        preds: the model output for the batch. Valid from *_BATCH_LOSS_END / *_BATCH_END.
        loss: the (unscaled) loss tensor of the batch, on the device. Valid from
            TRAIN_BATCH_LOSS_END and in VALIDATION/TEST_BATCH_END.
        loss_value: the train batch loss as a Python float when the trainer read it on the host (every
            batch on the CPU, and with ``nonfinite_loss: skip``), else None (a GPU run keeps losses on
            the device). Read it instead of ``loss.item()``, which forces a sync on a GPU. Valid from
            TRAIN_BATCH_BACKWARD_END to TRAIN_BATCH_END.
        train_metrics: {"loss": mean loss, metric name: value} of the last train epoch.
            Valid from TRAIN_EPOCH_END.
        valid_metrics: the same for the last validation. Valid from VALIDATION_EPOCH_END.
        test_metrics: {loader name: {metric name: value}}. Valid from TEST_END.
        metrics_dict: the metrics of the loop that just ended (train at TRAIN_EPOCH_END, valid
            at VALIDATION_EPOCH_END, test at TEST_END).
        train_metric_names: names in train_metrics ("loss" first). Valid always.
        valid_metric_names: names in valid_metrics ("loss" first). Valid always.
        metric_to_watch: name of the validation metric that decides the best checkpoint.
        greater_metric_to_watch_is_better: direction of metric_to_watch.
        best_metric: best value of metric_to_watch so far (restored on resume), or None.
        is_best: True at VALIDATION_EPOCH_END when this validation improved best_metric.
        validates_this_epoch: True when validation runs at the end of this epoch (from
            run_validation_freq and the presence of a valid loader). Valid from TRAIN_EPOCH_START.
        test_name: name of the test loader being run. Valid in TEST phases.
        stop_training: set True to end training after the current epoch.
        rank: this process's rank (0 when not distributed).
        world_size: number of processes (1 when not distributed).
        exception: the exception that ended training, if any. Valid in POST_TRAINING.
        swa_metrics: validation metrics of the SWA-averaged model (``swa`` training param), set at
            POST_TRAINING by the SWA callback; empty otherwise.
        scheduled_keys: param-group keys that a schedule moves besides ``lr`` (``momentum``,
            ``weight_decay``, ...): the run logs a ``<key>/<group>`` column for each. Set at
            PRE_TRAINING by the ``param_scheduler`` callback (which runs before the loggers).
    """

    experiment_name: str
    ckpt_dir: str
    device: torch.device
    training_params: Any
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    criterion: torch.nn.Module
    scaler: Any
    train_loader: Any
    valid_loader: Any
    max_epochs: int
    steps_per_epoch: int
    total_steps: int
    batch_accumulate: int = 1
    epoch: int = 0
    batch_idx: int = 0
    global_step: int = 0
    opens_step: bool = False
    closes_step: bool = False
    optimizer_stepped: bool = False
    skipped_steps: int = 0
    nonfinite_skipped_steps: int = 0
    inputs: Any = None
    target: Any = None
    preds: Any = None
    loss: torch.Tensor | None = None
    loss_value: float | None = None
    train_metrics: dict[str, float] = field(default_factory=dict)
    valid_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics_dict: dict[str, float] = field(default_factory=dict)
    train_metric_names: list[str] = field(default_factory=lambda: ["loss"])
    valid_metric_names: list[str] = field(default_factory=lambda: ["loss"])
    metric_to_watch: str = "loss"
    greater_metric_to_watch_is_better: bool = False
    best_metric: float | None = None
    is_best: bool = False
    validates_this_epoch: bool = False
    test_name: str | None = None
    stop_training: bool = False
    rank: int = 0
    world_size: int = 1
    exception: BaseException | None = None
    swa_metrics: dict[str, float] = field(default_factory=dict)
    scheduled_keys: list[str] = field(default_factory=list)

    @property
    def is_rank_zero(self) -> bool:
        """True in the process that writes files and shows progress."""
        return self.rank == 0
