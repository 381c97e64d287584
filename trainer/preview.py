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
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import schedulers
from callbacks import Callback, CallbackList, Phase, PhaseContext
from callbacks.checkpoint import load_checkpoint
from callbacks.group_values import lr_columns, lr_values
from callbacks.loggers import format_value
from callbacks.snapshots import snapshot_epochs_of
from registry import TORCH_LR_SCHEDULERS
from trainer.averaging import swa_lr_callbacks
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
            scheduler changes it, ``<key>/<group>`` for each other key ``param_scheduler`` moves.
        notes: caveats printed with the table.
        snapshot_epochs: with snapshot_ensemble, the epochs (from 1) after which a snapshot is saved.
        swa: the ``swa`` training param; from its start_epoch the values are SWALR's.
        param_scheduler: the recipe's param_scheduler list (empty when unset).
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
    param_scheduler: list[Any] = field(default_factory=list)
    snapshot_epochs: list[int] = field(default_factory=list)
    swa: dict[str, Any] | None = None

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


def _param_scheduler_plateau_mode(param_scheduler: Any) -> str | None:
    """ "max" or "min" for the first ReduceOnPlateau segment of ``param_scheduler`` (rule greater/less), else None."""
    from schedulers.param_scheduler_config import parse_entries

    for entry in parse_entries(param_scheduler):
        if entry.shape == "ReduceOnPlateau":
            return "max" if entry.args["rule"] == "greater" else "min"
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
        self.scheduled_keys: list[str] = []

    def on_training_start(self, context: PhaseContext) -> None:
        self.scheduled_keys = list(context.scheduled_keys)
        self.columns = lr_columns(context.optimizer.param_groups, self.scheduled_keys)
        self.preview.values = {column: [] for column in self.columns}

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        self.preview.global_step.append(context.global_step)
        self.preview.epoch.append(context.epoch)
        self.preview.batch_idx.append(context.batch_idx)
        for column, value in zip(self.columns, lr_values(context.optimizer.param_groups, self.scheduled_keys)):
            self.preview.values[column].append(value)


def preview_schedule(
    recipe: Any, overrides: list[str] | None = None, resume_from: str | Path | None = None
) -> SchedulePreview:
    """Run a recipe's LR callbacks on the loop's clock without training.

    Args:
        recipe: a shipped recipe name, a path, a dict, a DictConfig or a loaded Recipe.
        overrides: dotted ``key=value`` strings applied on top.
        resume_from: a checkpoint: preview the steps a resume from it would run, under the recipe's
            ``resume_schedule`` (warn: the rebuilt schedule; continue: the checkpoint's, held past its end).

    Returns:
        The per-step LRs (and changing momenta) of every param group.

    Raises:
        FileNotFoundError, ValueError, TypeError: a bad recipe or schedule (or, with ``resume_from``,
            ``resume_schedule: error`` and a schedule that differs from the checkpoint's).
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
        param_scheduler=list(params.get("param_scheduler") or []),
        steps_per_epoch=steps_per_epoch,
        max_epochs=params.max_epochs,
        warmup_steps=clock.warmup_steps,
        loader_info=(
            f"{len(train_set)} training samples, batch_size {section['batch_size']}, drop_last {section['drop_last']} "
            f"-> {num_batches} batches; max_train_batches {params.max_train_batches}, "
            f"batch_accumulate {params.batch_accumulate}"
        ),
    )
    checkpoint = load_checkpoint(resume_from) if resume_from is not None else None
    schedule_params = schedulers.schedule_params_to_run(params, checkpoint, str(resume_from))
    lr_callbacks = schedulers.build_lr_callbacks(schedule_params, net, optimizer, num_batches, steps_per_epoch)
    lr_callbacks = schedulers.hold_past_end(lr_callbacks, schedule_params, params, num_batches)
    if params.snapshot_ensemble:
        preview.snapshot_epochs = snapshot_epochs_of(
            lr_callbacks, params.max_epochs, params.snapshot_epochs, params.lr_mode
        )
    preview.swa = dict(params.swa) if params.swa is not None else None
    # The SWA LR callback runs after the schedule, as in training, and owns the LR from swa.start_epoch.
    callbacks = CallbackList([*lr_callbacks, *swa_lr_callbacks(params, optimizer), _StepRecorder(preview)])
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
    plateau_mode = _plateau_mode(params.lr_mode) or _param_scheduler_plateau_mode(params.get("param_scheduler"))
    if plateau_mode is not None:
        preview.notes.append(PLATEAU_NOTE)
    if checkpoint is not None:
        _restore(context, callbacks, checkpoint, str(resume_from), preview)
    _drive(context, callbacks, params, min(num_batches, params.max_train_batches or num_batches), plateau_mode or "min")
    for column in [column for column in preview.values if column.startswith("momentum/")]:
        if len(set(preview.values[column])) <= 1:
            del preview.values[column]
    return preview


def _drive(context: PhaseContext, callbacks: CallbackList, params: Any, num_batches: int, metric_mode: str) -> None:
    """Fire the loop's phases in the loop's order, with no data and no gradients."""
    optimizer = context.optimizer
    callbacks.fire(Phase.PRE_TRAINING, context)
    for epoch in range(context.epoch, context.max_epochs):  # context.epoch: 0, or the resume epoch
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


def _restore(context: PhaseContext, callbacks: CallbackList, checkpoint: dict, path: str, preview: SchedulePreview):
    """What a resume restores for the schedule: scheduler states, the optimizer's LRs, the clock; then
    the ``resume_schedule`` check (warn: its warning becomes a note; error: raises)."""
    import warnings

    schedulers.load_scheduler_states(callbacks.stateful(), checkpoint, path)
    if context.training_params.load_opt_params:
        context.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    context.epoch, context.global_step = checkpoint["epoch"], checkpoint["global_step"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        schedulers.warn_on_resumed_lr_mismatch(callbacks.callbacks, context, checkpoint)
    policy = context.training_params.resume_schedule
    trajectory = (
        "the checkpoint's own schedule, held at its final value past its end"
        if policy == "continue"
        else "the schedule rebuilt from the recipe's params"
    )
    preview.notes.append(
        f"resumed from {path} at epoch {context.epoch} (global step {context.global_step}); resume_schedule "
        f"{policy}: the steps shown are the ones the resume runs, with {trajectory}."
    )
    preview.notes += [str(warning.message) for warning in caught]


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
    """Write :func:`preview_figure` to the PNG ``path`` (parent folders created); needs matplotlib."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    preview_figure(preview).savefig(path, dpi=110)
    return path


def preview_figure(preview: SchedulePreview) -> Any:
    """The preview's ``matplotlib.figure.Figure``: each key per step, a panel per key (lr; momentum
    where it changes; each other scheduled key such as weight_decay), a line per param group; on every
    panel a dashed line at the end of each snapshot epoch and the SWA segment shaded."""
    from trainer.preview_plot import schedule_figure

    panels: dict[str, dict[str, list[float]]] = {}
    for column, values in preview.values.items():
        key, _, group = column.rpartition("/")
        panels.setdefault(key, {})[group] = values
    title = f"{preview.experiment_name}: lr_mode {_describe_lr_mode(preview.lr_mode)}"
    if preview.param_scheduler:
        schedule = f"param_scheduler {_describe_param_scheduler(preview.param_scheduler)}"
        title = f"{preview.experiment_name}: {schedule}" if preview.lr_mode is None else f"{title}, {schedule}"
    if preview.warmup_steps:
        title += f" after {preview.warmup_steps} warmup steps"
    if preview.snapshot_epochs:
        title += f"; snapshots after epochs {','.join(str(epoch) for epoch in preview.snapshot_epochs)}"
    if preview.swa is not None:
        title += f"; SWALR from epoch {preview.swa['start_epoch']} (step {preview.swa['start_epoch'] * preview.steps_per_epoch})"
    title = "\n".join(textwrap.wrap(title, 75))  # what fits the 8-inch figure at the title's font size
    swa_start = preview.swa["start_epoch"] if preview.swa is not None else None
    return schedule_figure(
        preview.global_step, panels, title, preview.steps_per_epoch, preview.snapshot_epochs, swa_start
    )


def _describe_param_scheduler(param_scheduler: Any) -> str:
    from schedulers.param_scheduler import describe

    return describe(param_scheduler)


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
        f"schedule of {preview.experiment_name}: lr_mode {_describe_lr_mode(preview.lr_mode)}"
        + (
            f", param_scheduler {_describe_param_scheduler(preview.param_scheduler)}" if preview.param_scheduler else ""
        ),
        f"clock: {preview.max_epochs} epochs x {preview.steps_per_epoch} optimizer steps = "
        f"{preview.max_epochs * preview.steps_per_epoch} steps ({preview.loader_info})"
        + (
            f"; shown: steps {preview.global_step[0]}-{preview.global_step[-1]}"
            if preview.global_step[:1] not in ([], [0])
            else ""
        ),
    ]
    first = preview.lr_columns[0] if preview.lr_columns else None
    if preview.warmup_steps and preview.global_step[:1] == [0]:  # not for a resume preview
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
        low_step, high_step = preview.global_step[low], preview.global_step[high]
        lines.append(f"{column}: min {values[low]:.6g} at step {low_step}, max {values[high]:.6g} at step {high_step}")
    lines += averaging_lines(preview)
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
    first_step = preview.global_step[0] if preview.global_step else 0  # > 0 for a resume preview
    for epoch in epochs:
        index = epoch * preview.steps_per_epoch - first_step
        if 0 <= index < len(preview.global_step):
            cells = (f"{preview.values[column][index]:.6g}" for column in columns)
            rows.append([str(epoch), str(preview.global_step[index]), *cells])
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]]
    title = "value at each epoch start" + (f" (every {every}th epoch; the CSV has every step)" if every > 1 else "")
    return title + ":\n" + "\n".join(text)


def averaging_lines(preview: SchedulePreview) -> list[str]:
    """The snapshot epochs and the SWA segment, for the printed preview."""
    lines = []
    if preview.snapshot_epochs:
        shown = ", ".join(str(epoch) for epoch in preview.snapshot_epochs)
        lines.append(f"snapshots (ckpt_snapshot_epoch{{N}}.pth) after epochs (from 1): {shown}")
    if preview.swa is not None:
        start = preview.swa["start_epoch"]
        first = start * preview.steps_per_epoch
        options = ", ".join(f"{key} {value}" for key, value in preview.swa.items() if key != "start_epoch")
        lines.append(
            f"swa: epochs {start}-{preview.max_epochs - 1} (steps {first}-{preview.max_epochs * preview.steps_per_epoch - 1}) follow "
            f"SWALR ({options}); the weights of each of those epochs' ends are averaged into ckpt_swa.pth"
        )
    return lines
