"""PNG plots of a run (LR, loss, metrics) and of a schedule preview. matplotlib is imported lazily.

Plots are drawn on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no GUI backend,
no global state), so they work on headless machines and inside tests.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from callbacks.base import Callback
from callbacks.context import PhaseContext
from callbacks.loggers import METRICS_FILE, STEPS_FILE

LR_PLOT = "lr.png"
LOSS_PLOT = "loss.png"
METRICS_PLOT = "metrics.png"


def _figure(rows: int = 1, height: float = 3.6):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, height * rows), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def read_csv_columns(path: str | Path) -> dict[str, list[float | None]]:
    """Column name -> values of a CSV written by the loggers (empty cells become None)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns: dict[str, list[float | None]] = {name: [] for name in reader.fieldnames or []}
        for row in reader:
            for name in columns:
                columns[name].append(_number(row.get(name)))
    return columns


def _number(cell: str | None) -> float | None:
    try:
        return float(cell) if cell not in (None, "") else None
    except ValueError:
        return None


def plot_lr_curve(
    steps: Sequence[int],
    series: dict[str, Sequence[float]],
    path: str | Path,
    title: str,
    steps_per_epoch: int | None = None,
    momentum: dict[str, Sequence[float]] | None = None,
) -> Path:
    """Plot LR (and momentum, on a second panel) per optimizer step; dotted lines mark epochs.

    Args:
        steps: optimizer step indices (the x axis).
        series: label -> LR per step.
        path: the PNG file to write.
        title: the figure title.
        steps_per_epoch: draw a vertical line at every epoch start when given (up to 60 epochs).
        momentum: label -> momentum per step, plotted below when given and not empty.
    """
    panels = 2 if momentum else 1
    figure = _figure(panels, height=3.2)
    axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    # steps-post: step k holds its value over [k, k + 1), so jumps show where they happen.
    for label, values in series.items():
        axes[0].plot(steps, values, label=label, linewidth=1.4, drawstyle="steps-post")
    axes[0].set_ylabel("learning rate")
    for label, values in (momentum or {}).items():
        axes[1].plot(steps, values, label=label, linewidth=1.4, drawstyle="steps-post")
    if momentum:
        axes[1].set_ylabel("momentum")
    if steps_per_epoch and len(steps) and len(steps) / steps_per_epoch <= 60:
        for axis in axes:
            for boundary in range(0, int(steps[-1]) + 1, steps_per_epoch):
                axis.axvline(boundary, color="0.85", linewidth=0.6, linestyle=":", zorder=0)
    for axis, count in zip(axes, (len(series), len(momentum or {}))):
        axis.grid(alpha=0.3)
        if count > 1:
            axis.legend(fontsize="small")
    axes[-1].set_xlabel(
        "optimizer step" + (f" (dotted: epoch starts, {steps_per_epoch} steps each)" if steps_per_epoch else "")
    )
    axes[0].set_title(title)
    figure.savefig(path, dpi=110)
    return Path(path)


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write lr.png, loss.png and metrics.png (when there are metrics besides the loss) from the
    run's steps.csv and metrics.csv. Returns the files written."""
    run_dir = Path(run_dir)
    written: list[Path] = []
    steps_path, metrics_path = run_dir / STEPS_FILE, run_dir / METRICS_FILE
    steps = read_csv_columns(steps_path) if steps_path.is_file() else {}
    epochs = read_csv_columns(metrics_path) if metrics_path.is_file() else {}
    if steps.get("global_step"):
        lr = {name[3:]: values for name, values in steps.items() if name.startswith("lr/")}
        momentum = {name[9:]: values for name, values in steps.items() if name.startswith("momentum/")}
        varying = {name: values for name, values in momentum.items() if len(set(values)) > 1}
        written.append(
            plot_lr_curve(steps["global_step"], lr, run_dir / LR_PLOT, f"{run_dir.name}: LR per step", momentum=varying)
        )
    if steps.get("global_step") or epochs.get("epoch"):
        written.append(_plot_loss(steps, epochs, run_dir / LOSS_PLOT, run_dir.name))
    metric_names = sorted(
        {name.split("/", 1)[1] for name in epochs if "/" in name and not name.startswith("lr/")} - {"loss"}
    )
    if metric_names and epochs.get("epoch"):
        written.append(_plot_metrics(epochs, metric_names, run_dir / METRICS_PLOT, run_dir.name))
    return written


def _plot_loss(steps: dict[str, list], epochs: dict[str, list], path: Path, name: str) -> Path:
    figure = _figure()
    axis = figure.subplots()
    if steps.get("global_step"):
        axis.plot(steps["global_step"], steps["loss"], label="train loss per step", color="0.6", linewidth=0.8)
    for column, style in (("train/loss", "o-"), ("valid/loss", "s-")):
        points = _present(epochs.get("global_step", []), epochs.get(column, []))
        if points[0]:
            axis.plot(*points, style, label=f"{column} (epoch mean)", markersize=3)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    axis.set_title(f"{name}: loss")
    figure.savefig(path, dpi=110)
    return path


def _plot_metrics(epochs: dict[str, list], metric_names: list[str], path: Path, name: str) -> Path:
    figure = _figure(len(metric_names), height=3.0)
    axes = figure.subplots(len(metric_names), 1, sharex=True, squeeze=False)[:, 0]
    for axis, metric in zip(axes, metric_names):
        for split, style in (("train", "o-"), ("valid", "s-")):
            points = _present(epochs["epoch"], epochs.get(f"{split}/{metric}", []))
            if points[0]:
                axis.plot(*points, style, label=split, markersize=3)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    from matplotlib.ticker import MaxNLocator

    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch")
    axes[0].set_title(f"{name}: metrics per epoch")
    figure.savefig(path, dpi=110)
    return path


def _present(xs: list[Any], ys: list[Any]) -> tuple[list[Any], list[Any]]:
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
    return [x for x, _ in pairs], [y for _, y in pairs]


class RunPlotter(Callback):
    """Writes the run's PNG plots at POST_TRAINING (after the loggers have flushed), unless
    training ended with an exception (a plotting error must not hide it).

    Args:
        run_dir: the run directory holding steps.csv and metrics.csv.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.written: list[Path] = []

    def on_training_end(self, context: PhaseContext) -> None:
        if context.exception is None:
            self.written = plot_run(self.run_dir)
