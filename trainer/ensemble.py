"""Evaluate snapshot ensembles: each snapshot's metrics and those of the mean of their predictions."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from callbacks.loggers import format_value
from registry import unknown_name_message
from trainer.builders import build_metrics

COMBINE_MODES = ("softmax", "raw")
"""How predictions are averaged: the mean of ``softmax(outputs, dim=1)``, or of the raw outputs."""
CLASSIFICATION_LOSSES = ("CrossEntropyLoss", "NLLLoss")
"""Losses whose outputs are class scores: ``combine="auto"`` averages their softmax."""
ENSEMBLE_CSV = "ensemble.csv"
_SNAPSHOT_FILE = re.compile(r"ckpt_snapshot_epoch(\d+)\.pth$")


@dataclass
class EnsembleReport:
    """Metrics of each snapshot and of their ensemble.

    Attributes:
        combine: "softmax" or "raw".
        metric_names: the metric columns.
        rows: one per snapshot, then the ensemble: {"model": name, "epoch": N or "", metric: value}.
    """

    combine: str
    metric_names: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ensemble(self) -> dict[str, Any]:
        """The ensemble's row."""
        return self.rows[-1]

    def table(self) -> str:
        """The rows as an aligned text table."""
        header = ["model", "epoch", *self.metric_names]
        body = [
            [str(row["model"]), str(row["epoch"]), *(_show(row[name]) for name in self.metric_names)]
            for row in self.rows
        ]
        widths = [max(len(cell) for cell in column) for column in zip(header, *body)]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *body]
        )

    def write_csv(self, path: str | Path) -> Path:
        """Write the rows (exact floats) to ``path``."""
        path = Path(path)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["model", "epoch", *self.metric_names])
            for row in self.rows:
                writer.writerow([row["model"], row["epoch"], *(format_value(row[name]) for name in self.metric_names)])
        return path


def _show(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def snapshot_files(snapshots: str | Path | Sequence[str | Path], last: int | None = None) -> list[Path]:
    """The snapshot files of a run directory (``ckpt_snapshot_epoch{N}.pth``, by N) or the given list;
    only the last ``last`` of them when given.

    Raises:
        FileNotFoundError: a missing file, or a directory without snapshots.
        ValueError: ``last`` < 1.
    """
    if isinstance(snapshots, (str, Path)) and Path(snapshots).is_dir():
        directory = Path(snapshots)
        found = [
            (int(match.group(1)), path) for path in directory.iterdir() if (match := _SNAPSHOT_FILE.search(path.name))
        ]
        files = [path for _, path in sorted(found)]
        if not files:
            raise FileNotFoundError(
                f"ensemble: {str(directory)!r} holds no ckpt_snapshot_epoch{{N}}.pth; train with "
                "snapshot_ensemble: true (docs/averaging.md)."
            )
    else:
        files = [Path(path) for path in ([snapshots] if isinstance(snapshots, (str, Path)) else snapshots)]
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(f"ensemble: snapshot {str(path)!r} does not exist.")
    if last is not None:
        if last < 1:
            raise ValueError(f"ensemble: --last must be >= 1, got {last!r}.")
        files = files[-last:]
    return files


def combine_mode_for_loss(loss: Any) -> str:
    """ "softmax" for a classification loss (CrossEntropyLoss, NLLLoss, by name or module), else "raw"."""
    name = (
        loss if isinstance(loss, str) else next(iter(loss), None) if isinstance(loss, Mapping) else type(loss).__name__
    )
    return "softmax" if name in CLASSIFICATION_LOSSES else "raw"


@torch.no_grad()
def _outputs(model: torch.nn.Module, loader: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    outputs, targets = [], []
    for inputs, target in loader:
        outputs.append(model(inputs.to(device)).float())
        targets.append(target.to(device))
    return torch.cat(outputs), torch.cat(targets)


def _metric_values(metrics: Mapping[str, Any], preds: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    values = {}
    for name, metric in metrics.items():
        metric.reset()
        metric.update(preds, target)
        value = metric.compute()
        values[name] = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
        metric.reset()
    return values


def evaluate_snapshots(
    model: torch.nn.Module,
    snapshots: str | Path | Sequence[str | Path],
    loader: Any,
    metrics: Mapping[str, Any] | Sequence[Any],
    combine: str = "softmax",
    device: str | torch.device = "cpu",
    last: int | None = None,
) -> EnsembleReport:
    """Each snapshot's metrics on ``loader`` and those of the ensemble.

    The ensemble's prediction for a sample is the mean over snapshots of ``softmax(outputs, dim=1)``
    (``combine="softmax"``) or of the raw outputs (``combine="raw"``, for regression and other
    non-classification losses). A snapshot's own metrics use its raw outputs. With "softmax" the
    report also has ``nll``, the mean negative log-likelihood of the targets: ``cross_entropy`` of a
    snapshot's outputs, and ``-log`` of the ensemble's mean probability of the target class.

    Args:
        model: a model of the trained architecture; each snapshot's ``net`` is loaded into it.
        snapshots: a run directory (its ``ckpt_snapshot_epoch{N}.pth`` by N) or a list of files.
        loader: DataLoader of (inputs, target) batches, in a fixed order.
        metrics: {name: torchmetrics Metric} or a ``valid_metrics_list``-style list.
        combine: "softmax" or "raw".
        device: where to run.
        last: use only the last ``last`` snapshots.

    Returns:
        An EnsembleReport: a row per snapshot, then the ensemble's.

    Raises:
        ValueError: unknown ``combine``; FileNotFoundError: no snapshots.
    """
    if combine not in COMBINE_MODES:
        raise ValueError(unknown_name_message("evaluate_snapshots: combine", combine, COMBINE_MODES))
    device = torch.device(device)
    metrics = dict(metrics) if isinstance(metrics, Mapping) else build_metrics(metrics, "metrics")
    metrics = {name: metric.to(device) for name, metric in metrics.items()}
    files = snapshot_files(snapshots, last)
    model = model.to(device).eval()
    # With class scores, the mean negative log-likelihood of the targets too (where ensembles gain most).
    with_nll = combine == "softmax"
    report = EnsembleReport(combine, [*(["nll"] if with_nll else []), *metrics])
    total, target = None, None
    for path in files:
        record = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(record["net"])
        outputs, target = _outputs(model, loader, device)
        row = {"model": path.name, "epoch": record.get("epoch", "")}
        if with_nll:
            row["nll"] = torch.nn.functional.cross_entropy(outputs, target).item()
        report.rows.append({**row, **_metric_values(metrics, outputs, target)})
        share = torch.softmax(outputs, dim=1) if combine == "softmax" else outputs
        total = share if total is None else total + share
    mean = total / len(files)
    row = {"model": f"ensemble of {len(files)}", "epoch": ""}
    if with_nll:
        row["nll"] = torch.nn.functional.nll_loss(mean.log(), target).item()
    report.rows.append({**row, **_metric_values(metrics, mean, target)})
    return report
