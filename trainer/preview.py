"""The schedule preview: the exact LR of every optimizer step of a recipe, computed without training.

It builds what training builds (the model, for its parameter names; the optimizer, with the
recipe's param groups; the train loader, for its length; the LR callbacks of
``schedulers.build_lr_callbacks``, torch schedulers included) and fires the loop's phases in the
loop's order on the loop's clock, recording the LR at TRAIN_BATCH_GRADIENT_STEP_START as the run's
steps.csv does. No forward or backward pass runs; the optimizer steps without gradients, which
changes no weight. Metrics are stand-ins that improve every epoch, so a ReduceLROnPlateau schedule
shows the run in which no plateau occurs (the preview says so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import schedulers
from callbacks import Callback, CallbackList, Phase, PhaseContext
from callbacks.loggers import format_value, lr_columns, lr_values
from registry import TORCH_LR_SCHEDULERS
from trainer.builders import build_metrics, build_optimizer
from trainer.recipe import (
    build_datasets,
    build_loaders,
    build_model,
    load_recipe,
    resolve_recipe_training_params,
)
from trainer.trainer import seed_everything

PLATEAU_NOTE = (
    "ReduceLROnPlateau lowers the LR when a metric stops improving, so the real curve depends on the "
    "metrics; shown here as if the metric improves every epoch (no plateau)."
)


@dataclass
class SchedulePreview:
    """The per-step schedule of a recipe.

    Attributes:
        experiment_name: the recipe's experiment.
        lr_mode: the recipe's lr_mode.
        steps_per_epoch: S, optimizer steps per epoch.
        max_epochs: E.
        warmup_steps: W, optimizer steps of the framework warmup (lr_warmup_epochs/steps).
        loader_info: how S came about (samples, batch size, ...), for the printout.
        global_step, epoch, batch_idx: per optimizer step: its index, epoch and closing batch.
        values: column -> value per step; ``lr/<group>`` always, ``momentum/<group>`` where a
            scheduler changes it.
        notes: caveats printed with the table.
    """

    experiment_name: str
    lr_mode: Any
    steps_per_epoch: int
    max_epochs: int
    warmup_steps: int
    loader_info: str
    global_step: list[int] = field(default_factory=list)
    epoch: list[int] = field(default_factory=list)
    batch_idx: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def lr_columns(self) -> list[str]:
        return [column for column in self.values if column.startswith("lr/")]


def _plateau_mode(lr_mode: Any) -> str | None:
    """``mode`` of a ReduceLROnPlateau (or subclass) named in a mapping lr_mode, else None."""
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    if not isinstance(lr_mode, Mapping):
        return None
    for name, kwargs in lr_mode.items():
        cls = TORCH_LR_SCHEDULERS.get(name) if name in TORCH_LR_SCHEDULERS else None
        if cls is not None and issubclass(cls, ReduceLROnPlateau):
            return (kwargs or {}).get("mode", "min")
    return None


def _improving(epoch: int, mode: str) -> float:
    """A metric value better than every earlier one by a factor of 2 (any threshold up to 1 is cleared)."""
    value = 2.0 ** min(epoch, 1000)
    return value if mode == "max" else -value


class _StepRecorder(Callback):
    """Records, at TRAIN_BATCH_GRADIENT_STEP_START, the LR (and momentum) the step is about to use."""

    def __init__(self, preview: SchedulePreview):
        self.preview = preview
        self.columns: list[str] = []

    def on_training_start(self, context: PhaseContext) -> None:
        self.columns = lr_columns(context.optimizer.param_groups)
        self.preview.values = {column: [] for column in self.columns}

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        self.preview.global_step.append(context.global_step)
        self.preview.epoch.append(context.epoch)
        self.preview.batch_idx.append(context.batch_idx)
        for column, value in zip(self.columns, lr_values(context.optimizer.param_groups)):
            self.preview.values[column].append(value)


def preview_schedule(recipe: Any, overrides: list[str] | None = None) -> SchedulePreview:
    """Run a recipe's LR callbacks on the loop's clock without training.

    Args:
        recipe: a shipped recipe name, a path, a dict, a DictConfig or a loaded Recipe.
        overrides: dotted ``key=value`` strings applied on top.

    Returns:
        The per-step LRs (and changing momenta) of every param group.

    Raises:
        FileNotFoundError, ValueError, TypeError: a bad recipe or schedule.
    """
    loaded = load_recipe(recipe, overrides)
    params = resolve_recipe_training_params(loaded)
    with torch.random.fork_rng(devices=[]):
        if params.seed is not None:
            seed_everything(params.seed)
        net = build_model(loaded)
        train_set, valid_set = build_datasets(loaded)
    train_loader, valid_loader = build_loaders(loaded, train_set, valid_set, params.seed)
    optimizer = build_optimizer(net, params)
    num_batches = len(train_loader)
    steps_per_epoch = schedulers.steps_per_epoch(num_batches, params.max_train_batches, params.batch_accumulate)
    clock = schedulers.ScheduleClock.from_params(params, steps_per_epoch)
    section = loaded.config["dataloader"]
    preview = SchedulePreview(
        experiment_name=loaded.config["experiment_name"],
        lr_mode=params.lr_mode,
        steps_per_epoch=steps_per_epoch,
        max_epochs=params.max_epochs,
        warmup_steps=clock.warmup_steps,
        loader_info=(
            f"{len(train_set)} training samples, batch_size {section['batch_size']}, drop_last {section['drop_last']} "
            f"-> {num_batches} batches; max_train_batches {params.max_train_batches}, "
            f"batch_accumulate {params.batch_accumulate}"
        ),
    )
    lr_callbacks = schedulers.build_lr_callbacks(params, net, optimizer, num_batches, steps_per_epoch)
    callbacks = CallbackList([*lr_callbacks, _StepRecorder(preview)])
    context = PhaseContext(
        experiment_name=preview.experiment_name,
        ckpt_dir="",
        device=torch.device("cpu"),
        training_params=params,
        net=net,
        optimizer=optimizer,
        criterion=None,
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        train_loader=train_loader,
        valid_loader=valid_loader,
        max_epochs=params.max_epochs,
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * params.max_epochs,
        batch_accumulate=params.batch_accumulate,
        train_metric_names=["loss", *build_metrics(params.train_metrics_list, "train_metrics_list")],
        valid_metric_names=["loss", *build_metrics(params.valid_metrics_list, "valid_metrics_list")],
        metric_to_watch=params.metric_to_watch,
    )
    plateau_mode = _plateau_mode(params.lr_mode)
    if plateau_mode is not None:
        preview.notes.append(PLATEAU_NOTE)
    _drive(context, callbacks, params, min(num_batches, params.max_train_batches or num_batches), plateau_mode or "min")
    for column in [column for column in preview.values if column.startswith("momentum/")]:
        if len(set(preview.values[column])) <= 1:
            del preview.values[column]
    return preview


def _drive(context: PhaseContext, callbacks: CallbackList, params: Any, num_batches: int, metric_mode: str) -> None:
    """Fire the loop's phases in the loop's order, with no data and no gradients."""
    optimizer = context.optimizer
    callbacks.fire(Phase.PRE_TRAINING, context)
    for epoch in range(context.max_epochs):
        context.epoch = epoch
        context.validates_this_epoch = schedulers.validates_after_epoch(
            epoch, context.max_epochs, params.run_validation_freq, context.valid_loader is not None
        )
        callbacks.fire(Phase.TRAIN_EPOCH_START, context)
        for batch_idx in range(num_batches):
            opens, closes, _ = schedulers.accumulation_window(batch_idx, num_batches, context.batch_accumulate)
            context.batch_idx, context.opens_step, context.closes_step = batch_idx, opens, closes
            context.optimizer_stepped = False
            callbacks.fire(Phase.TRAIN_BATCH_START, context)
            callbacks.fire(Phase.TRAIN_BATCH_LOSS_END, context)
            callbacks.fire(Phase.TRAIN_BATCH_BACKWARD_END, context)
            if closes:
                callbacks.fire(Phase.TRAIN_BATCH_GRADIENT_STEP_START, context)
                optimizer.step()  # no parameter has a gradient: nothing changes but the step counters
                optimizer.zero_grad(set_to_none=True)
                context.optimizer_stepped = True
                context.global_step += 1
                callbacks.fire(Phase.TRAIN_BATCH_STEP, context)
            callbacks.fire(Phase.TRAIN_BATCH_END, context)
        value = _improving(epoch, metric_mode)
        context.train_metrics = {name: value for name in context.train_metric_names}
        context.metrics_dict = context.train_metrics
        callbacks.fire(Phase.TRAIN_EPOCH_END, context)
        if context.validates_this_epoch:
            callbacks.fire(Phase.VALIDATION_EPOCH_START, context)
            context.valid_metrics = {name: value for name in context.valid_metric_names}
            context.metrics_dict = context.valid_metrics
            callbacks.fire(Phase.VALIDATION_EPOCH_END, context)
    callbacks.fire(Phase.POST_TRAINING, context)


def write_csv(preview: SchedulePreview, path: str | Path) -> Path:
    """One row per optimizer step: global_step, epoch, batch_idx and the value columns (exact floats)."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["global_step", "epoch", "batch_idx", *preview.values])
        for index, step in enumerate(preview.global_step):
            cells = [
                step,
                preview.epoch[index],
                preview.batch_idx[index],
                *(values[index] for values in preview.values.values()),
            ]
            writer.writerow([format_value(cell) for cell in cells])
    return path


def write_png(preview: SchedulePreview, path: str | Path) -> Path:
    """Plot the LR per step (and the momentum where it changes); needs matplotlib."""
    from callbacks.plots import plot_lr_curve

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lr = {column[3:]: values for column, values in preview.values.items() if column.startswith("lr/")}
    momentum = {column[9:]: values for column, values in preview.values.items() if column.startswith("momentum/")}
    title = f"{preview.experiment_name}: lr_mode {_describe_lr_mode(preview.lr_mode)}"
    if preview.warmup_steps:
        title += f" after {preview.warmup_steps} warmup steps"
    return plot_lr_curve(preview.global_step, lr, path, title, preview.steps_per_epoch, momentum or None)


def _describe_lr_mode(lr_mode: Any) -> str:
    if isinstance(lr_mode, Mapping):
        return ", ".join(str(name) for name in lr_mode)
    return str(lr_mode) if lr_mode is not None else "constant"


def milestones(values: list[float]) -> list[int]:
    """Steps where the value jumps after a constant stretch (step schedules, warmup ends)."""
    return [k for k in range(2, len(values)) if values[k] != values[k - 1] and values[k - 1] == values[k - 2]]


def summary_text(preview: SchedulePreview, max_rows: int = 30) -> str:
    """The printed preview: the clock, warmup end, milestones, minimum and maximum, each epoch's start."""
    lines = [
        f"schedule of {preview.experiment_name}: lr_mode {_describe_lr_mode(preview.lr_mode)}",
        f"clock: {preview.max_epochs} epochs x {preview.steps_per_epoch} optimizer steps = "
        f"{len(preview.global_step)} steps ({preview.loader_info})",
    ]
    first = preview.lr_columns[0] if preview.lr_columns else None
    if preview.warmup_steps:
        end = min(preview.warmup_steps, len(preview.global_step) - 1)
        lines.append(
            f"warmup: steps 0-{preview.warmup_steps - 1}; step {preview.warmup_steps} "
            f"(epoch {preview.epoch[end]}) uses {first} {preview.values[first][end]:.6g}"
        )
    for column, values in preview.values.items():
        if not values:
            continue
        twin = _twin_of(preview, column)
        if twin is not None:
            lines.append(f"{column}: same as {twin}")
            continue
        if len(set(values)) == 1:
            lines.append(f"{column}: constant {values[0]:.6g}")
            continue
        jumps = milestones(values)
        per_epoch = len(jumps) > 3 and len(jumps) >= (preview.max_epochs - 1) // 2
        if jumps and per_epoch and all(k % preview.steps_per_epoch == 0 for k in jumps):
            lines.append(f"{column} changes at {len(jumps)} epoch starts (a per-epoch schedule; see the table)")
        elif jumps:
            shown = ", ".join(f"{k} (epoch {preview.epoch[k]}: {values[k]:.6g})" for k in jumps[:8])
            more = f", ... ({len(jumps)} in all)" if len(jumps) > 8 else ""
            lines.append(f"{column} milestones (jumps after a constant stretch): step {shown}{more}")
        low, high = min(range(len(values)), key=values.__getitem__), max(range(len(values)), key=values.__getitem__)
        lines.append(f"{column}: min {values[low]:.6g} at step {low}, max {values[high]:.6g} at step {high}")
    lines.append(_epoch_table(preview, max_rows))
    lines += [f"note: {note}" for note in preview.notes]
    return "\n".join(lines)


def _twin_of(preview: SchedulePreview, column: str) -> str | None:
    """An earlier column with exactly the same values (groups split by weight decay), or None."""
    for other in preview.values:
        if other == column:
            return None
        if preview.values[other] == preview.values[column]:
            return other
    return None


def _epoch_table(preview: SchedulePreview, max_rows: int) -> str:
    every = max(1, math.ceil(preview.max_epochs / max_rows))
    epochs = sorted(set(range(0, preview.max_epochs, every)) | {preview.max_epochs - 1})
    columns = [column for column in preview.values if _twin_of(preview, column) is None]
    header = ["epoch", "first step", *columns]
    rows = []
    for epoch in epochs:
        index = epoch * preview.steps_per_epoch
        if index < len(preview.global_step):
            rows.append([str(epoch), str(index), *(f"{preview.values[column][index]:.6g}" for column in columns)])
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    title = "value at each epoch start" + (f" (every {every}th epoch; the CSV has every step)" if every > 1 else "")
    return title + ":\n" + "\n".join(text)
