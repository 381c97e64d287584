"""The result of an LR range test: the curve, the suggestions, and its table, CSV and plot."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from callbacks.loggers import format_value
from trainer.lr_suggestions import DEFAULT_SUGGESTION, SUGGESTIONS


@dataclass
class LRFinderResult:
    """The curve of an LR range test and the LRs it suggests.

    Attributes:
        lrs: the LR of each optimizer step taken (of the param group with the largest initial_lr;
            the others keep their ratio to it).
        losses: the smoothed loss of each step (bias-corrected exponential moving average).
        raw_losses: the loss of each step (mean of its micro-batches, averaged over ranks).
        suggestions: {"valley", "steepest", "min_loss_div10"} -> LR; empty when the curve is too
            short or flat (``message`` says why).
        suggested_lr: ``suggestions["min_loss_div10"]`` (see ``DEFAULT_SUGGESTION``), or None.
        diverged_at: index of the step that ended the sweep (smoothed loss above diverge_th x the
            best, the last point of the curve; or a non-finite loss, whose step is not taken and
            not in the curve), or None when the sweep ran all num_iter steps.
        stop_reason: how the sweep ended, in words.
        message: why there is no suggestion ("" when there are).
        suggestion_indices: suggestion name -> index of its curve point.
        start_lr, end_lr, num_iter, mode, smooth_f, diverge_th: the sweep's arguments.
        group_ratios: param group label -> its LR / the largest group's.
    """

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestions: dict[str, float]
    suggested_lr: float | None
    diverged_at: int | None
    stop_reason: str
    message: str
    suggestion_indices: dict[str, int]
    start_lr: float
    end_lr: float
    num_iter: int
    mode: str
    smooth_f: float
    diverge_th: float
    group_ratios: dict[str, float] = field(default_factory=dict)

    def table(self) -> str:
        """The suggestions as a small text table (or the reason there are none)."""
        if not self.suggestions:
            return f"no suggestion: {self.message}"
        rows = [("suggestion", "lr", "smoothed loss")]
        for name in SUGGESTIONS:
            index = self.suggestion_indices[name]
            label = name + (" (suggested)" if name == DEFAULT_SUGGESTION else "")
            rows.append((label, f"{self.suggestions[name]:.3g}", f"{self.losses[index]:.4g}"))
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)

    def write_csv(self, path: str | Path) -> Path:
        """One row per step: step, lr, raw_loss, smoothed_loss (exact floats)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["step", "lr", "raw_loss", "smoothed_loss"])
            for step, row in enumerate(zip(self.lrs, self.raw_losses, self.losses)):
                writer.writerow([step, *(format_value(value) for value in row)])
        return path

    def plot(self, path: str | Path, title: str = "LR range test") -> Path:
        """Plot the smoothed (and raw) loss against the LR, with the suggestions marked; needs matplotlib.

        Raises:
            ImportError: matplotlib is not installed (``pip install 'phasetrain[plots]'``).
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("LRFinderResult.plot needs matplotlib; pip install 'phasetrain[plots]'.") from None
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure = Figure(figsize=(8, 4.5), layout="constrained")
        FigureCanvasAgg(figure)
        axis = figure.subplots()
        axis.plot(self.lrs, self.raw_losses, color="0.75", linewidth=0.8, label="loss")
        axis.plot(self.lrs, self.losses, color="C0", linewidth=1.6, label="smoothed loss")
        markers = {"valley": ("C3", "o"), "steepest": ("C2", "^"), "min_loss_div10": ("C1", "s")}
        for name, lr in self.suggestions.items():
            color, marker = markers[name]
            index = self.suggestion_indices[name]
            axis.axvline(lr, color=color, linestyle=":", linewidth=1)
            point_lr = self.lrs[index]
            axis.plot([point_lr], [self.losses[index]], marker=marker, color=color, linestyle="", markersize=8)
            axis.plot([], [], marker=marker, color=color, linestyle=":", label=f"{name}: {lr:.3g}")
        if self.mode == "exp":
            axis.set_xscale("log")
        if self.losses:  # keep the explosion from squashing the interesting part
            low, first = min(self.losses + self.raw_losses), self.losses[0]
            margin = abs(first - low) + 1e-12
            axis.set_ylim(low - 0.05 * margin, first + 0.4 * margin)
        axis.set_xlabel("learning rate")
        axis.set_ylabel("training loss")
        axis.set_title(title if not self.message else f"{title}\n(no suggestion: {self.message[:80]}...)")
        axis.legend(loc="upper left")
        axis.grid(True, which="major", alpha=0.3)
        figure.savefig(path, dpi=110)
        return path
