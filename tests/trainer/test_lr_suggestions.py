"""The range test's pure math: swept LRs, the smoothed loss, and suggestions on hand-made curves."""

from __future__ import annotations

import math

import pytest

from trainer.lr_suggestions import MIN_WINDOW, smooth_losses, suggest, sweep_lr, valley_index


def test_swept_lrs_exponential_and_linear():
    assert [sweep_lr(i, 1e-3, 10.0, 5) for i in range(5)] == pytest.approx([1e-3, 1e-2, 1e-1, 1.0, 10.0], rel=1e-12)
    assert [sweep_lr(i, 0.0, 1.0, 5, "linear") for i in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_smoothed_loss_is_the_bias_corrected_moving_average():
    # avg0 = 0.5 * 2 = 1 -> 1 / (1 - 0.5) = 2; avg1 = 0.5 * 4 + 0.5 * 1 = 2.5 -> 2.5 / 0.75
    assert smooth_losses([2.0, 4.0], 0.5) == [2.0, 2.5 / 0.75]
    assert smooth_losses([3.0, 1.0, 7.0], 1.0) == [3.0, 1.0, 7.0]


def test_valley_is_fastais():
    # Longest decreasing subsequence ends at index 6 (5, 4, 3, 2, 1: length 5); fastai's start is
    # 6 - 5 = 1, and the valley index 1 + int(5 / 3) + int(5 / 6) = 2.
    assert valley_index([5, 4, 6, 3, 2, 7, 1, 8]) == 2
    assert valley_index([1, 2, 3]) == 0  # never decreasing: the first point


def curve():
    """100 points: a noisy dip in the first tenth, a plateau at 2.0, a cosine descent to 0.5 over
    steps 40..71 (steepest between 55 and 56), a rise with one sharp drop (80 -> 81), as a sweep."""
    lrs = [sweep_lr(i, 1e-6, 1.0, 100) for i in range(100)]
    losses = [2.0] * 100
    losses[5] = 0.1  # early noise, below everything else
    for i in range(40, 72):
        losses[i] = 1.25 + 0.75 * math.cos(math.pi * (i - 40) / 31)
    for i in range(72, 100):
        losses[i] = 0.5 + 0.05 * (i - 71)
    losses[81] = 0.6  # a drop of 0.4 in one step, steeper than the descent's 0.076 per step
    return lrs, losses


def test_suggestions_skip_early_noise_and_look_for_the_steepest_descent_before_the_minimum():
    lrs, losses = curve()
    found = suggest(lrs, losses, 100)
    assert found.window == (10, 95)
    assert found.indices == {"valley": 54, "steepest": 55, "min_loss_div10": 71}
    assert found.lrs == {"valley": lrs[54], "steepest": lrs[55], "min_loss_div10": lrs[71] / 10}
    assert found.message == ""


def test_a_flat_curve_gets_a_message_not_a_suggestion():
    lrs = [sweep_lr(i, 1e-6, 1.0, 50) for i in range(50)]
    losses = [2.0 - 0.001 * (i % 7) for i in range(50)]  # wiggles of 0.3%
    found = suggest(lrs, losses, 50)
    assert found.lrs == {} and found.indices == {}
    # The window starts at 50 // 10 = 5, where the loss is 2 - 0.005.
    assert found.message.startswith(
        f"flat: the smoothed loss never fell 5% below 1.995 (its value at lr {lrs[5]:.3g}) between lr {lrs[5]:.3g} and "
        f"{lrs[44]:.3g}; no LR in the range trains the model"
    )


def test_a_short_curve_gets_a_message_not_a_suggestion():
    lrs = [sweep_lr(i, 1e-6, 1.0, 100) for i in range(20)]
    losses = [2.0 - 0.1 * i for i in range(20)]
    found = suggest(lrs, losses, 100)  # diverged after 20 of 100 steps: 5 points between 10 and 15
    assert found.lrs == {}
    assert found.message.startswith(
        f"too short: 20 points, 5 left after skipping the first 10 and the last 5; suggestions need {MIN_WINDOW}."
    )
