"""Run logs: steps.csv (one row per optimizer step), metrics.csv (one row per epoch), TensorBoard.

Both CSV files live in the run directory and are written by rank 0 only. The LR logged for
optimizer step k is read at TRAIN_BATCH_GRADIENT_STEP_START, right before the optimizer uses it.
Per-step values are kept in memory (losses on the device) and written in batches (every
``flush_every`` steps or ``flush_seconds``, at each epoch end and when training ends), CSV rows and
TensorBoard events alike, so logging adds no host-device sync and no write per step.

On resume, rows at or past the resume point (written after the checkpoint by a run that was
stopped) are dropped and the file is rewritten up to that point, then appended to: a resumed run's
logs read as if it had never stopped.
"""

from __future__ import annotations

import csv
import importlib.util
import time
from pathlib import Path
from typing import Any

import torch

from callbacks.base import Callback
from callbacks.context import PhaseContext
from callbacks.event_file import TensorBoardSink
from callbacks.group_values import StepValueReader, lr_columns, other_keys, param_group_labels

STEPS_FILE = "steps.csv"
METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


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


class StepLogger(Callback):
    """Writes ``steps.csv``: global_step, epoch, batch_idx, lr/<group>..., momentum/<group>...,
    <key>/<group>... (each other scheduled key, ``context.scheduled_keys``), loss.

    The loss of a step is the mean loss of its micro-batches. A step that did not happen (skipped by
    the GradScaler or for a non-finite loss) gets no row; the next step reuses its index.

    Per step it only appends: the row's host values (read right before the optimizer step) and the
    micro-batches' losses (the float the loss guard read on the host, ``context.loss_value``, else the
    tensors, which stay on the device). The pending rows are written in one
    batch (one device-to-host transfer for their losses, one CSV write, one batch of TensorBoard
    events) when ``flush_every`` of them are pending or the oldest is ``flush_seconds`` old, at each
    epoch end, and when training ends (normally, by Ctrl-C or by an exception); checkpoints are
    written after the epoch's flush. A killed process loses at most the unflushed rows; resuming
    from a checkpoint rewrites the file up to the checkpoint's step either way.

    Args:
        path: the CSV file.
        flush_every: steps kept pending before they are written.
        flush_seconds: age of the oldest pending step that triggers a write (slow steps still reach
            the disk every so often).
        tensorboard: a TensorBoardSink that receives the same values, or None.
    """

    def __init__(
        self,
        path: str | Path,
        flush_every: int = 1024,
        flush_seconds: float = 30.0,
        tensorboard: TensorBoardSink | None = None,
    ):
        self.path = Path(path)
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.tensorboard = tensorboard
        self._file: _CsvFile | None = None
        self._columns: list[str] = []
        self._values: StepValueReader | None = None
        self._rows: list[tuple[int, int, int, float, int, int, list[Any]]] = []
        """Per pending step: global_step, epoch, batch_idx, wall time, the slice ``[first, end)`` of ``_losses``
        that makes its loss, and the raw param-group entries (``StepValueReader.read``)."""
        self._losses: list[torch.Tensor | float] = []
        """Every micro-batch loss since the last flush (detached, on the device)."""
        self._step_first_loss = 0

    def on_training_start(self, context: PhaseContext) -> None:
        param_groups = context.optimizer.param_groups
        self._values = StepValueReader(param_groups, other_keys(context.scheduled_keys))
        self._columns = ["global_step", "epoch", "batch_idx", *lr_columns(param_groups, context.scheduled_keys), "loss"]
        self._file = _CsvFile(self.path, self._columns, "global_step", context.global_step)
        if self.tensorboard is not None:
            self.tensorboard.attach(context.global_step)

    def on_train_batch_backward_end(self, context: PhaseContext) -> None:
        # Taken here, before any TRAIN_BATCH_END callback can raise: a step that happened keeps its loss.
        # The loss guard's host read when there is one (a float), else the tensor, left on the device.
        value = context.loss_value
        self._losses.append(context.loss.detach() if value is None else value)

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        rows, now = self._rows, time.time()
        if rows and rows[-1][0] == context.global_step:  # its step did not happen (_drop_step_not_taken)
            rows.pop()
        if rows and (len(rows) >= self.flush_every or now - rows[0][3] >= self.flush_seconds):
            self._flush()
            rows = self._rows
        end = len(self._losses)
        rows.append(
            (
                context.global_step,
                context.epoch,
                context.batch_idx,
                now,
                self._step_first_loss,
                end,
                self._values.read(context.optimizer.param_groups),
            )
        )
        self._step_first_loss = end

    def on_train_loader_end(self, context: PhaseContext) -> None:
        self._drop_step_not_taken(context.global_step)
        self._flush()

    def on_training_end(self, context: PhaseContext) -> None:
        if self._file is None:
            return
        self._drop_step_not_taken(context.global_step)
        self._flush()
        self._file.close()
        self._file = None
        if self.tensorboard is not None:
            self.tensorboard.detach()

    def _drop_step_not_taken(self, global_step: int) -> None:
        """Drop the last row when its optimizer step did not happen (skipped by the GradScaler or for a
        non-finite loss, or cut short by an exception): the run's global_step did not move past it.
        Its losses go with it. Checked before the next row, before each flush, and at the end."""
        if self._rows and self._rows[-1][0] == global_step:
            self._rows.pop()

    def _flush(self) -> None:
        """Move the pending losses to the host in one transfer (unless read there already) and write their rows."""
        if self._rows:
            losses = self._losses
            if losses and not isinstance(losses[0], float):
                losses = torch.stack(losses).float().cpu().tolist()
            cells = self._values.cells
            rows = [
                [step, epoch, batch_idx, *cells(entries), _mean(losses[first:end])]
                for step, epoch, batch_idx, _, first, end, entries in self._rows
            ]
            # Every cell is an int or a float: the csv module writes str(float), which is repr(float).
            self._file.writer.writerows(rows)
            self._file.handle.flush()
            if self.tensorboard is not None:
                self.tensorboard.add_rows(
                    self._columns[3:],
                    [row[0] for row in rows],
                    [row[3] for row in self._rows],
                    [row[3:] for row in rows],
                )
        # Losses after the last row (an accumulation window still open at a mid-epoch flush) carry over.
        self._losses = self._losses[self._step_first_loss :]
        self._step_first_loss = 0
        self._rows = []


def _mean(values: list[float]) -> float:
    return values[0] if len(values) == 1 else sum(values) / len(values)


class EpochLogger(Callback):
    """Writes ``metrics.csv``: epoch, global_step, train/<metric>..., valid/<metric>..., lr/<group>...
    (the LR of the epoch's first optimizer step), skipped_steps (optimizer steps skipped in the epoch:
    by the GradScaler, or for a non-finite loss with ``nonfinite_loss: skip``), duration_s.

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
            "skipped_steps",
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
        values["skipped_steps"] = context.skipped_steps
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
