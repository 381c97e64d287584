"""The math of the LR range test: the swept LRs, the smoothed loss and the suggestions (pure functions).

The sweep and its smoothing follow the classic range test (Leslie Smith's, as the PyTorch scheduler
guide and the fastai lesson teach it); the suggestions are fastai's ``steep``, ``valley`` and
``minimum``, computed on a window that drops the first tenth of the sweep and its last points (the
same window fastai uses), with two guards of our own: a curve must really descend, and the steepest
descent is looked for before the minimum only. docs/lr_finder.md explains each one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from registry import did_you_mean

SWEEP_MODES = ("exp", "linear")
SUGGESTIONS = ("valley", "steepest", "min_loss_div10")
DEFAULT_SUGGESTION = "min_loss_div10"
"""``suggested_lr``: an order of magnitude below the LR of the lowest smoothed loss (the rule the
lesson teaches). The minimum is the steadiest feature of a smoothed curve; the steepest point moves
with the noise of a derivative and with the lag of the smoothing, and fastai's valley lands in a
long, slowly drifting plateau (on the digits recipe: valley 0.0013, steepest 0.010, min / 10 0.029;
four epochs of digits_cosine reach 93.3%, 98.3% and 98.3% accuracy with them; docs/lr_finder.md)."""

SKIP_END = 5
"""Points dropped at the end of the curve before suggesting (the last ones ride the divergence)."""
MIN_WINDOW = 8
"""Fewest points a suggestion is computed from; shorter curves get a message instead."""
MIN_DESCENT = 0.05
"""The smoothed loss must fall at least this fraction below the window's first value."""


def sweep_lr(step: int, start_lr: float, end_lr: float, num_iter: int, mode: str = "exp") -> float:
    """The LR of sweep step ``step`` (0 .. num_iter - 1).

    ``exp``: ``start_lr * (end_lr / start_lr) ** (step / (num_iter - 1))``; ``linear``:
    ``start_lr + (end_lr - start_lr) * step / (num_iter - 1)``.
    """
    fraction = step / (num_iter - 1)
    if mode == "exp":
        return start_lr * (end_lr / start_lr) ** fraction
    return start_lr + (end_lr - start_lr) * fraction


def check_sweep_args(start_lr: float, end_lr: float, num_iter: int, mode: str, smooth_f: float, diverge_th: float):
    """Validate the range test's arguments.

    Raises:
        TypeError: a value of the wrong type.
        ValueError: a value that breaks its rule (each message names the argument and the rule).
    """
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr), ("smooth_f", smooth_f), ("diverge_th", diverge_th)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"find_lr: {name} must be a number, got {type(value).__name__} {value!r}.")
    if isinstance(num_iter, bool) or not isinstance(num_iter, int):
        raise TypeError(f"find_lr: num_iter must be an int, got {type(num_iter).__name__} {num_iter!r}.")
    if mode not in SWEEP_MODES:
        raise ValueError(
            f"find_lr: unknown mode {mode!r}; valid modes: {', '.join(SWEEP_MODES)}.{did_you_mean(str(mode), SWEEP_MODES)}"
        )
    if not start_lr > 0 or not math.isfinite(end_lr):
        raise ValueError(
            f"find_lr: start_lr must be > 0 and end_lr finite, got start_lr={start_lr!r}, end_lr={end_lr!r}."
        )
    if start_lr >= end_lr:
        raise ValueError(f"find_lr: start_lr must be < end_lr, got start_lr={start_lr!r} >= end_lr={end_lr!r}.")
    if num_iter < 2:
        raise ValueError(f"find_lr: num_iter must be >= 2 (the sweep needs two LRs), got {num_iter!r}.")
    if not 0 < smooth_f <= 1:
        raise ValueError(
            f"find_lr: smooth_f must be in (0, 1] (the weight of the newest loss; 1 = no smoothing), got {smooth_f!r}."
        )
    if not diverge_th > 1:
        raise ValueError(
            f"find_lr: diverge_th must be > 1 (stop when the smoothed loss exceeds diverge_th x the best), "
            f"got {diverge_th!r}."
        )


class SmoothedLoss:
    """The bias-corrected exponential moving average of a stream of losses.

    ``avg_i = smooth_f * loss_i + (1 - smooth_f) * avg_(i-1)`` from ``avg = 0``, and
    ``smoothed_i = avg_i / (1 - (1 - smooth_f) ** (i + 1))``.
    """

    def __init__(self, smooth_f: float):
        self.smooth_f = smooth_f
        self.average = 0.0
        self.count = 0

    def update(self, loss: float) -> float:
        """Add the next loss; return its smoothed value."""
        self.average = self.smooth_f * loss + (1 - self.smooth_f) * self.average
        self.count += 1
        return self.average / (1 - (1 - self.smooth_f) ** self.count)


def smooth_losses(raw_losses: Sequence[float], smooth_f: float) -> list[float]:
    """``SmoothedLoss`` over a whole curve."""
    smoother = SmoothedLoss(smooth_f)
    return [smoother.update(loss) for loss in raw_losses]


@dataclass
class Suggestions:
    """LR suggestions of a range-test curve.

    Attributes:
        lrs: suggestion name -> LR (empty when the curve cannot give one).
        indices: suggestion name -> index of the curve point it comes from.
        window: (first, last + 1) indices of the points the suggestions were computed from.
        message: why there is no suggestion (empty when there are).
    """

    lrs: dict[str, float] = field(default_factory=dict)
    indices: dict[str, int] = field(default_factory=dict)
    window: tuple[int, int] = (0, 0)
    message: str = ""


def suggest(lrs: Sequence[float], losses: Sequence[float], num_iter: int) -> Suggestions:
    """Suggest LRs from a smoothed range-test curve (all of whose losses are finite).

    The window drops the first ``num_iter // 10`` points (early noise, and the LRs too small to move
    the weights) and the last ``SKIP_END`` (the run-up to the divergence). In the window:

    - ``min_loss_div10``: the LR of the lowest smoothed loss, divided by 10;
    - ``steepest``: the LR where the smoothed loss falls fastest per unit of log LR, looked for
      between the window's start and the minimum (a dip after the minimum is noise, not learning);
    - ``valley``: fastai's valley: the longest strictly decreasing run of points (a longest
      decreasing subsequence), and the LR about two thirds along it.

    Args:
        lrs: the LR of each point.
        losses: the smoothed loss of each point.
        num_iter: the sweep's requested length (sets the skipped start, as in fastai).

    Returns:
        Suggestions; with a message and no LRs when the window holds fewer than ``MIN_WINDOW`` points
        or the loss never falls ``MIN_DESCENT`` below its value at the window's start.
    """
    first, last = num_iter // 10, len(losses) - SKIP_END
    result = Suggestions(window=(first, max(first, last)))
    if last - first < MIN_WINDOW:
        result.message = (
            f"too short: {len(losses)} points, {max(0, last - first)} left after skipping the first {first} and the "
            f"last {SKIP_END}; suggestions need {MIN_WINDOW}. Raise num_iter or end_lr/diverge_th "
            "(the loss diverged early), or lower start_lr."
        )
        return result
    window_lrs, window_losses = list(lrs[first:last]), list(losses[first:last])
    low = min(range(len(window_losses)), key=window_losses.__getitem__)
    if window_losses[low] > (1 - MIN_DESCENT) * window_losses[0]:
        result.message = (
            f"flat: the smoothed loss never fell {MIN_DESCENT:.0%} below {window_losses[0]:.4g} (its value at "
            f"lr {window_lrs[0]:.3g}) between lr {window_lrs[0]:.3g} and {window_lrs[-1]:.3g}; no LR in the range "
            "trains the model in this many steps. Widen the range or raise num_iter, and check the data and loss."
        )
        return result
    steep = _steepest_index(window_lrs[: low + 1], window_losses[: low + 1])
    found = {"valley": valley_index(window_losses), "steepest": steep, "min_loss_div10": low}
    result.indices = {name: first + index for name, index in found.items()}
    result.lrs = {name: float(window_lrs[index]) for name, index in found.items()}
    result.lrs["min_loss_div10"] /= 10
    return result


def _steepest_index(lrs: Sequence[float], losses: Sequence[float]) -> int:
    """Index i where (loss[i+1] - loss[i]) / (log lr[i+1] - log lr[i]) is the most negative."""
    slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(len(losses) - 1)]
    return min(range(len(slopes)), key=slopes.__getitem__) if slopes else 0


def valley_index(losses: Sequence[float]) -> int:
    """fastai's valley: about two thirds along the longest decreasing subsequence of ``losses``.

    ``run[i]`` is the length of the longest strictly decreasing subsequence ending at i; with
    ``end`` the first i of the longest and ``start = end - run[end]``, the index is
    ``start + int((end - start) / 3) + int((end - start) / 6)``.
    """
    count = len(losses)
    run = [1] * count
    start = end = 0
    for i in range(1, count):
        for j in range(i):
            if losses[i] < losses[j] and run[i] < run[j] + 1:
                run[i] = run[j] + 1
            if run[end] < run[i]:
                end, start = i, i - run[i]
    sections = (end - start) / 3
    # start is -1 when the run begins at the first point (fastai's arithmetic); never index from the end.
    return max(0, start + int(sections) + int(sections / 2))
