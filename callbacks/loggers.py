"""Run logs: steps.csv (one row per optimizer step), metrics.csv (one row per epoch), TensorBoard.

Both CSV files live in the run directory and are written by rank 0 only. The LR logged for
optimizer step k is read at TRAIN_BATCH_GRADIENT_STEP_START, right before the optimizer uses it.
Per-step losses stay on the device and reach the host in batches (every ``flush_every`` steps and
at each epoch end), so logging adds no host-device sync per step.

On resume, rows at or past the resume point (written after the checkpoint by a run that was
stopped) are dropped and the file is rewritten up to that point, then appended to: a resumed run's
logs read as if it had never stopped.
"""

from __future__ import annotations

import csv
import importlib.util
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from callbacks.base import Callback
from callbacks.context import PhaseContext

STEPS_FILE = "steps.csv"
METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


def param_group_labels(param_groups: Iterable[dict[str, Any]]) -> list[str]:
    """One label per param group: its ``name`` ("default" when unnamed); repeats get ``#2``, ``#3``.

    Groups share a name when ``zero_weight_decay_on_bias_and_bn`` splits a group in two; the
    second keeps the name with a suffix, so every group has its own column.
    """
    labels, seen = [], {}
    for group in param_groups:
        name = str(group.get("name", "default"))
        count = seen.get(name, 0)
        labels.append(name if count == 0 else f"{name}#{count + 1}")
        seen[name] = count + 1
    return labels


def group_momentum(group: dict[str, Any]) -> float | None:
    """The momentum of a param group: ``momentum`` (SGD, RMSprop) or ``betas[0]`` (Adam family)."""
    if "momentum" in group:
        return float(group["momentum"])
    if "betas" in group:
        return float(group["betas"][0])
    return None


def lr_columns(param_groups: list[dict[str, Any]]) -> list[str]:
    """``lr/<group>`` columns, then ``momentum/<group>`` for groups that have a momentum."""
    labels = param_group_labels(param_groups)
    momentum = [f"momentum/{label}" for label, group in zip(labels, param_groups) if group_momentum(group) is not None]
    return [f"lr/{label}" for label in labels] + momentum


def lr_values(param_groups: list[dict[str, Any]]) -> list[float]:
    """The values of ``lr_columns`` for the optimizer's current state (Python floats, no sync)."""
    momentum = [group_momentum(group) for group in param_groups]
    return [float(group["lr"]) for group in param_groups] + [value for value in momentum if value is not None]


def format_value(value: Any) -> str:
    """A CSV cell: floats with repr (they read back exactly), tensors as lists, None as empty."""
    if value is None:
        return ""
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    return repr(value) if isinstance(value, float) else str(value)


def _rewrite_until(path: Path, columns: list[str], key: str, resume_point: int) -> bool:
    """Keep the rows of ``path`` with ``row[key] < resume_point`` under ``columns``.

    Returns True when the file now exists (with its header), False when it was not there.
    """
    if not path.is_file():
        return False
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get(key) and int(row[key]) < resume_point]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return True


class _CsvFile:
    """An append-mode CSV file with a fixed header, started fresh or continued after a resume."""

    def __init__(self, path: Path, columns: list[str], key: str, resume_point: int):
        continuing = resume_point > 0 and _rewrite_until(path, columns, key, resume_point)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a" if continuing else "w", newline="")
        self.writer = csv.writer(self.handle)
        if not continuing:
            self.writer.writerow(columns)

    def write(self, rows: list[list[Any]]) -> None:
        self.writer.writerows([[format_value(value) for value in row] for row in rows])
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class TensorBoardSink:
    """A shared SummaryWriter under ``<run dir>/tensorboard``, opened by the first logger that
    attaches and closed when the last one detaches. Tags are the CSV column names; the x axis is
    the global step for per-step and per-epoch values alike, so a resume purges later events."""

    def __init__(self, log_dir: str | Path):
        self.log_dir = Path(log_dir)
        self._writer = None
        self._attached = 0

    def attach(self, purge_step: int) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir), purge_step=purge_step or None)
        self._attached += 1

    def add(self, tags: dict[str, float], step: int) -> None:
        for tag, value in tags.items():
            if isinstance(value, (int, float)):
                self._writer.add_scalar(tag, value, step)

    def detach(self) -> None:
        self._attached -= 1
        if self._attached == 0 and self._writer is not None:
            self._writer.close()
            self._writer = None


class StepLogger(Callback):
    """Writes ``steps.csv``: global_step, epoch, batch_idx, lr/<group>..., momentum/<group>..., loss.

    The loss of a step is the mean loss of its micro-batches. A step the GradScaler skipped gets
    no row (it did not happen; the next step reuses its index).

    Args:
        path: the CSV file.
        flush_every: steps kept on the device before they are written.
        tensorboard: a TensorBoardSink that receives the same values, or None.
    """

    def __init__(self, path: str | Path, flush_every: int = 64, tensorboard: TensorBoardSink | None = None):
        self.path = Path(path)
        self.flush_every = flush_every
        self.tensorboard = tensorboard
        self._file: _CsvFile | None = None
        self._columns: list[str] = []
        self._rows: list[list[Any]] = []
        self._losses: list[torch.Tensor] = []
        self._window_loss: torch.Tensor | None = None
        self._window_batches = 0

    def on_training_start(self, context: PhaseContext) -> None:
        self._columns = ["global_step", "epoch", "batch_idx", *lr_columns(context.optimizer.param_groups), "loss"]
        self._file = _CsvFile(self.path, self._columns, "global_step", context.global_step)
        if self.tensorboard is not None:
            self.tensorboard.attach(context.global_step)

    def on_train_batch_backward_end(self, context: PhaseContext) -> None:
        loss = context.loss.detach().float()
        self._window_loss = loss if self._window_batches == 0 else self._window_loss + loss
        self._window_batches += 1

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        self._rows.append(
            [context.global_step, context.epoch, context.batch_idx, *lr_values(context.optimizer.param_groups)]
        )
        self._losses.append(self._window_loss / self._window_batches)
        self._window_batches = 0

    def on_train_batch_end(self, context: PhaseContext) -> None:
        if context.closes_step and not context.optimizer_stepped:
            self._rows.pop()
            self._losses.pop()
        if len(self._rows) >= self.flush_every:
            self._flush()

    def on_train_loader_end(self, context: PhaseContext) -> None:
        self._flush()

    def on_training_end(self, context: PhaseContext) -> None:
        if self._file is None:
            return
        self._flush()
        self._file.close()
        self._file = None
        if self.tensorboard is not None:
            self.tensorboard.detach()

    def _flush(self) -> None:
        """Move the pending losses to the host in one transfer and write their rows."""
        if not self._rows:
            return
        losses = torch.stack(self._losses).cpu().tolist()
        rows = [row + [loss] for row, loss in zip(self._rows, losses)]
        self._file.write(rows)
        if self.tensorboard is not None:
            for row in rows:
                self.tensorboard.add(dict(zip(self._columns[3:], row[3:])), step=row[0])
        self._rows, self._losses = [], []


class EpochLogger(Callback):
    """Writes ``metrics.csv``: epoch, global_step, train/<metric>..., valid/<metric>..., lr/<group>...
    (the LR of the epoch's first optimizer step), duration_s.

    The row of an epoch is written after its validation (or after training when it does not
    validate); epochs without validation leave the valid cells empty.

    Args:
        path: the CSV file.
        tensorboard: a TensorBoardSink that receives the same values, or None.
    """

    def __init__(self, path: str | Path, tensorboard: TensorBoardSink | None = None):
        self.path = Path(path)
        self.tensorboard = tensorboard
        self._file: _CsvFile | None = None
        self._columns: list[str] = []
        self._started = 0.0
        self._epoch_lrs: list[float] | None = None

    def on_training_start(self, context: PhaseContext) -> None:
        labels = param_group_labels(context.optimizer.param_groups)
        valid = [f"valid/{name}" for name in context.valid_metric_names] if context.valid_loader is not None else []
        self._columns = [
            "epoch",
            "global_step",
            *[f"train/{name}" for name in context.train_metric_names],
            *valid,
            *[f"lr/{label}" for label in labels],
            "duration_s",
        ]
        self._file = _CsvFile(self.path, self._columns, "epoch", context.epoch)
        if self.tensorboard is not None:
            self.tensorboard.attach(context.global_step)

    def on_train_loader_start(self, context: PhaseContext) -> None:
        self._started = time.perf_counter()
        self._epoch_lrs = None

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        if self._epoch_lrs is None:
            self._epoch_lrs = [float(group["lr"]) for group in context.optimizer.param_groups]

    def on_train_loader_end(self, context: PhaseContext) -> None:
        if not context.validates_this_epoch:
            self._write_row(context)

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self._write_row(context)

    def on_training_end(self, context: PhaseContext) -> None:
        if self._file is None:
            return
        self._file.close()
        self._file = None
        if self.tensorboard is not None:
            self.tensorboard.detach()

    def _write_row(self, context: PhaseContext) -> None:
        values = {"epoch": context.epoch, "global_step": context.global_step}
        values.update({f"train/{name}": value for name, value in context.train_metrics.items()})
        if context.validates_this_epoch:
            values.update({f"valid/{name}": value for name, value in context.valid_metrics.items()})
        lrs = self._epoch_lrs or [float(group["lr"]) for group in context.optimizer.param_groups]
        values.update(zip([column for column in self._columns if column.startswith("lr/")], lrs))
        values["duration_s"] = round(time.perf_counter() - self._started, 3)
        self._file.write([[values.get(column) for column in self._columns]])
        if self.tensorboard is not None:
            tags = {
                key: value for key, value in values.items() if key not in ("global_step",) and not key.startswith("lr/")
            }
            self.tensorboard.add(tags, step=context.global_step)


def _wanted(setting: bool | None, module: str, key: str, extra: str) -> bool:
    """Whether an optional output is on: True requires ``module``, None means "when installed"."""
    installed = importlib.util.find_spec(module) is not None
    if setting is True and not installed:
        raise ImportError(
            f"training_params: key {key!r} is True but {module!r} is not installed; "
            f"pip install 'phasetrain[{extra}]' (or set {key}: false)."
        )
    return bool(setting) if setting is not None else installed


def build_run_loggers(run_dir: str | Path, training_params: Any) -> list[Callback]:
    """The logging callbacks ``training_params`` ask for (rank 0 only; the trainer decides that).

    ``log_steps`` adds steps.csv, ``metrics.csv`` is always written, ``tensorboard`` (None: when
    installed) adds event files, ``plots`` adds PNG plots at the end of training.

    Raises:
        ImportError: ``tensorboard`` or ``plots`` is True and its package is not installed.
    """
    from callbacks.plots import RunPlotter

    run_dir = Path(run_dir)
    use_tensorboard = _wanted(training_params.tensorboard, "tensorboard", "tensorboard", "tensorboard")
    use_plots = _wanted(training_params.plots, "matplotlib", "plots", "plots")
    sink = TensorBoardSink(run_dir / TENSORBOARD_DIR) if use_tensorboard else None
    loggers: list[Callback] = []
    if training_params.log_steps:
        loggers.append(StepLogger(run_dir / STEPS_FILE, tensorboard=sink))
    loggers.append(EpochLogger(run_dir / METRICS_FILE, tensorboard=sink))
    if use_plots:
        loggers.append(RunPlotter(run_dir))
    return loggers
