"""The schedule preview's picture: one panel per scheduled key (lr, momentum, weight_decay, ...),
with the snapshot epochs and the SWA segment marked on every panel."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SNAPSHOT_GID = "snapshot"
SWA_GID = "swa"


def schedule_figure(
    steps: Sequence[int],
    panels: dict[str, dict[str, Sequence[float]]],
    title: str,
    steps_per_epoch: int | None = None,
    snapshot_epochs: Sequence[int] = (),
    swa_start_epoch: int | None = None,
) -> Any:
    """Each key's per-step values in its own panel, one line per param group; needs matplotlib.

    Args:
        steps: optimizer step indices (the x axis); step k holds its value over [k, k + 1).
        panels: key (the panel's y label) -> {group label: value per step}.
        title: the figure title.
        steps_per_epoch: S; a dotted line at every epoch start when given (up to 60 epochs).
        snapshot_epochs: epochs N (from 1) after which a snapshot is saved: a dashed line at step
            N * S (the epoch's end, gid ``"snapshot"``), labelled "snapshot N" on the top panel.
        swa_start_epoch: the SWA start epoch (from 0): a shaded span (gid ``"swa"``) from its first
            step, start * S, to the end of the steps, labelled "SWA" on the top panel.

    Returns:
        The ``matplotlib.figure.Figure`` (not attached to pyplot).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    first, end = (int(steps[0]), int(steps[-1]) + 1) if len(steps) else (0, 0)  # first > 0: a resume preview
    x = [*steps, end]  # one more point, so that the last step's value shows over [k, k + 1)
    figure = Figure(figsize=(8, 0.6 + 2.6 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for axis, (key, series) in zip(axes, panels.items()):
        for label, values in series.items():
            axis.plot(x, [*values, *values[-1:]], label=label, linewidth=1.4, drawstyle="steps-post")
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
        if len(series) > 1:
            axis.legend(fontsize="small")
        if steps_per_epoch and len(steps) and len(steps) / steps_per_epoch <= 60:
            for boundary in range(0, int(steps[-1]) + 1, steps_per_epoch):
                axis.axvline(boundary, color="0.85", linewidth=0.6, linestyle=":", zorder=0)
        if steps_per_epoch:
            _mark_averaging(axis, (first, end), steps_per_epoch, snapshot_epochs, swa_start_epoch, axis is axes[0])
    axes[-1].set_xlabel(
        "optimizer step"
        + (f" (dotted: epoch starts, {steps_per_epoch} steps each)" if steps_per_epoch else "")
        + ("; dashed: snapshots" if snapshot_epochs else "")
        + ("; shaded: SWA" if swa_start_epoch is not None else "")
    )
    axes[0].set_title(title)
    return figure


def _mark_averaging(
    axis: Any,
    shown: tuple[int, int],
    steps_per_epoch: int,
    snapshot_epochs: Sequence[int],
    swa_start_epoch: int | None,
    labelled: bool,
) -> None:
    """The snapshot lines and the SWA span inside the steps ``shown`` ([first, end)); labels if ``labelled``."""
    first, end = shown
    for epoch in snapshot_epochs:
        if first < epoch * steps_per_epoch <= end:  # a resume preview starts past the earlier ones
            axis.axvline(epoch * steps_per_epoch, color="tab:red", linewidth=0.9, linestyle="--", gid=SNAPSHOT_GID)
            if labelled:
                _top_label(axis, epoch * steps_per_epoch, f"snapshot {epoch}", "tab:red", "right", rotation=90)
    if swa_start_epoch is not None and swa_start_epoch * steps_per_epoch < end:
        start = max(swa_start_epoch * steps_per_epoch, first)
        axis.axvspan(start, end, color="tab:green", alpha=0.12, linewidth=0, gid=SWA_GID, zorder=0)
        if labelled:
            _top_label(axis, start, "SWA", "tab:green", "left")


def _top_label(axis: Any, x: float, text: str, color: str, align: str, rotation: float = 0) -> None:
    """Small text hanging from the top of the panel at data x, 2 points to the ``align`` side of x."""
    offset = (-2 if align == "right" else 2, -2)
    axis.annotate(
        text,
        (x, 1),
        xycoords=("data", "axes fraction"),
        xytext=offset,
        textcoords="offset points",
        color=color,
        fontsize=7,
        rotation=rotation,
        va="top",
        ha=align,
        bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0, "pad": 0.5},  # readable over the curve
    )
