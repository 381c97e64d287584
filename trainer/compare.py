"""Compare finished runs from their logs: one picture (LR, smoothed train loss, validation metric) and a table.

Reads each run directory's ``metrics.csv`` (one row per epoch) and ``steps.csv`` (one row per
optimizer step); nothing is trained or loaded onto a device. Columns are found by name
(``lr/<group>``, ``valid/<metric>``, ``duration_s``), so runs with other param groups or extra
columns still compare.

The metric of a run is its ``metric_to_watch``, read from the run's ``recipe.yaml`` (written by
``phasetrain train``), else from its ``ckpt_latest.pth``, else ``loss``; its direction is
``greater_metric_to_watch_is_better``, else the metric's torchmetrics ``higher_is_better`` (lower
for the loss), as training decides it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callbacks.loggers import METRICS_FILE, STEPS_FILE
from callbacks.plots import read_csv_columns
from trainer.lr_suggestions import smooth_losses

LOSS_SMOOTHING = 0.1
"""smooth_f of the plotted train loss: the bias-corrected moving average find_lr uses."""


@dataclass
class RunLogs:
    """The logs of one run and what the comparison reads from them.

    Attributes:
        name: the label in the legend and the table (the run directory's name, or parent/name
            when two runs share a name).
        run_dir: the run directory.
        steps: steps.csv, column -> values.
        metrics: metrics.csv, column -> values.
        metric_to_watch: the validation metric compared.
        greater_is_better: its direction.
    """

    name: str
    run_dir: Path
    steps: dict[str, list[float | None]]
    metrics: dict[str, list[float | None]]
    metric_to_watch: str
    greater_is_better: bool

    @property
    def lr_groups(self) -> list[str]:
        return [column[3:] for column in self.steps if column.startswith("lr/")]

    @property
    def metric_values(self) -> list[tuple[int, float]]:
        """(epoch, value) of each validated epoch."""
        column = self.metrics.get(f"valid/{self.metric_to_watch}", [])
        return [(int(epoch), value) for epoch, value in zip(self.metrics["epoch"], column) if value is not None]

    def best(self) -> tuple[float | None, int | None]:
        """(best metric_to_watch, its epoch); the first epoch wins a tie, as in training."""
        values = [(epoch, value) for epoch, value in self.metric_values if not math.isnan(value)]
        if not values:
            return None, None
        pick = max if self.greater_is_better else min
        epoch, value = pick(values, key=lambda item: item[1])
        return value, epoch

    def final_lr(self) -> float | None:
        """The LR of the last optimizer step (the largest over param groups)."""
        last = [self.steps[f"lr/{group}"][-1] for group in self.lr_groups if self.steps[f"lr/{group}"]]
        return max(last) if last else None

    def wall_time_s(self) -> float:
        """The sum of the epochs' duration_s."""
        return sum(value for value in self.metrics.get("duration_s", []) if value is not None)


def load_run(run_dir: str | Path, metric: str | None = None, greater_is_better: bool | None = None) -> RunLogs:
    """Read a run directory's logs.

    Args:
        run_dir: the directory a training run wrote (``<ckpt_root_dir>/<experiment_name>``).
        metric: compare this validation metric instead of the run's metric_to_watch.
        greater_is_better: its direction (default: as training decides it).

    Raises:
        FileNotFoundError: the directory, or its metrics.csv or steps.csv, does not exist.
        ValueError: the metric is not in metrics.csv, or its direction cannot be told.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"compare: run directory {str(run_dir)!r} does not exist.")
    for name, what in (
        (METRICS_FILE, "one row per epoch"),
        (STEPS_FILE, "one row per optimizer step; log_steps: true"),
    ):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"compare: run directory {str(run_dir)!r} has no {name} ({what}); is it the directory a training run wrote?"
            )
    metrics = read_csv_columns(run_dir / METRICS_FILE)
    steps = read_csv_columns(run_dir / STEPS_FILE)
    for path, columns, needed in ((METRICS_FILE, metrics, "epoch"), (STEPS_FILE, steps, "global_step")):
        if needed not in columns:
            raise ValueError(f"compare: {run_dir / path} has no {needed!r} column; columns: {', '.join(columns)}.")
    watched, direction = _watched_metric(run_dir)
    if metric is not None:
        watched, direction = metric, greater_is_better
    direction = _direction(run_dir, watched, direction)
    if f"valid/{watched}" not in metrics:
        choices = [column[6:] for column in metrics if column.startswith("valid/")]
        from registry import did_you_mean

        raise ValueError(
            f"compare: {run_dir / METRICS_FILE} has no valid/{watched} column; validation metrics: "
            f"{', '.join(choices) or 'none (the run did not validate)'}.{did_you_mean(watched, choices)}"
        )
    return RunLogs(run_dir.name, run_dir, steps, metrics, watched, direction)


def _recipe_params(run_dir: Path) -> dict[str, Any] | None:
    recipe = run_dir / "recipe.yaml"
    if recipe.is_file():
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(OmegaConf.load(recipe), resolve=True)
        return dict(config.get("training_hyperparams") or {})
    checkpoint = run_dir / "ckpt_latest.pth"
    if checkpoint.is_file():
        import torch

        return dict(torch.load(checkpoint, map_location="cpu", weights_only=True).get("training_params") or {})
    return None


def _watched_metric(run_dir: Path) -> tuple[str, bool | None]:
    params = _recipe_params(run_dir) or {}
    return str(params.get("metric_to_watch") or "loss"), params.get("greater_metric_to_watch_is_better")


def _direction(run_dir: Path, metric: str, declared: bool | None) -> bool:
    if declared is not None:
        return bool(declared)
    if metric == "loss":
        return False
    from trainer.builders import build_metrics

    params = _recipe_params(run_dir) or {}
    try:
        built = build_metrics(params.get("valid_metrics_list") or [], "valid_metrics_list")
    except (TypeError, ValueError):
        built = {}
    higher = getattr(built.get(metric), "higher_is_better", None)
    if higher is None:
        raise ValueError(
            f"compare: cannot tell whether a greater {metric!r} is better in {str(run_dir)!r} (no recipe.yaml or "
            "checkpoint declares it); pass greater_is_better (--mode max or --mode min)."
        )
    return bool(higher)


def load_runs(run_dirs: Sequence[str | Path], metric: str | None = None, greater_is_better: bool | None = None):
    """``load_run`` for each directory; runs that share a directory name are labelled parent/name."""
    if not run_dirs:
        raise ValueError("compare: give at least one run directory.")
    runs = [load_run(run_dir, metric, greater_is_better) for run_dir in run_dirs]
    names = [run.name for run in runs]
    for run in runs:
        if names.count(run.name) > 1:
            run.name = f"{run.run_dir.parent.name}/{run.run_dir.name}"
    return runs


def summary_table(runs: Sequence[RunLogs]) -> str:
    """One row per run: best metric_to_watch, its epoch, epochs, optimizer steps, final LR, wall time."""
    header = ("run", "metric_to_watch", "best", "epoch", "epochs", "steps", "final lr", "wall time s")
    rows = [header]
    for run in runs:
        best, epoch = run.best()
        final_lr = run.final_lr()
        rows.append(
            (
                run.name,
                f"{run.metric_to_watch} ({'max' if run.greater_is_better else 'min'})",
                "-" if best is None else f"{best:.6g}",
                "-" if epoch is None else str(epoch),
                str(len(run.metrics["epoch"])),
                str(len(run.steps["global_step"])),
                "-" if final_lr is None else f"{final_lr:.4g}",
                f"{run.wall_time_s():.1f}",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def plot_runs(runs: Sequence[RunLogs], path: str | Path) -> Path:
    """Three panels: LR per optimizer step, smoothed train loss per step, validation metric per epoch.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'phasetrain[plots]'``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise ImportError("compare: the plot needs matplotlib; pip install 'phasetrain[plots]'.") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(9, 10), layout="constrained")
    FigureCanvasAgg(figure)
    lr_axis, loss_axis, metric_axis = figure.subplots(3, 1)
    styles = ["-", "--", ":", "-."]
    for index, run in enumerate(runs):
        color = f"C{index % 10}"
        steps = run.steps["global_step"]
        groups = run.lr_groups
        for number, group in enumerate(groups):
            label = run.name if len(groups) == 1 else f"{run.name}: {group}"
            lr_axis.plot(
                steps,
                run.steps[f"lr/{group}"],
                color=color,
                linestyle=styles[number % 4],
                label=label,
                drawstyle="steps-post",
                linewidth=1.4,
            )
        losses = [(step, loss) for step, loss in zip(steps, run.steps.get("loss", [])) if loss is not None]
        if losses:
            smoothed = smooth_losses([loss for _, loss in losses], LOSS_SMOOTHING)
            loss_axis.plot([step for step, _ in losses], smoothed, color=color, label=run.name, linewidth=1.4)
        points = run.metric_values
        metric_axis.plot(
            [epoch for epoch, _ in points],
            [value for _, value in points],
            color=color,
            marker="o",
            markersize=3,
            label=f"{run.name} ({run.metric_to_watch})",
            linewidth=1.4,
        )
    lr_axis.set(title="learning rate per optimizer step", xlabel="optimizer step", ylabel="learning rate")
    loss_axis.set(
        title=f"training loss per optimizer step (moving average, smooth_f {LOSS_SMOOTHING})",
        xlabel="optimizer step",
        ylabel="training loss",
    )
    if all(value > 0 for line in loss_axis.get_lines() for value in line.get_ydata()):
        loss_axis.set_yscale("log")  # late differences between runs are small in absolute terms
    watched = sorted({run.metric_to_watch for run in runs})
    metric_axis.set(title="validation metric per epoch", xlabel="epoch", ylabel=", ".join(watched))
    metric_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in (lr_axis, loss_axis, metric_axis):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize="small")
    figure.savefig(path, dpi=100)
    return path
