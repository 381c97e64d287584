"""The schedule preview marks the snapshot epochs and the SWA segment on every panel of its picture."""

from __future__ import annotations

import pytest

from trainer.preview import preview_figure, preview_schedule, summary_text, write_png
from trainer.preview_plot import SNAPSHOT_GID, SWA_GID, schedule_figure

pytest.importorskip("matplotlib")

# digits: 1,438 training images in batches of 64 -> S = 23 optimizer steps per epoch.
S = 23
SWA_OVERRIDES = [
    "training_hyperparams.swa={start_epoch: 8, swa_lr: 0.01, anneal_epochs: 1}",
    "training_hyperparams.snapshot_ensemble=true",
    "training_hyperparams.snapshot_epochs=[4, 8]",
]


def snapshot_lines(axis) -> list[float]:
    xs = [line.get_xdata() for line in axis.lines if line.get_gid() == SNAPSHOT_GID]
    assert all(x[0] == x[1] for x in xs)  # vertical
    return [float(x[0]) for x in xs]


def swa_spans(axis) -> list[tuple[float, float]]:
    spans = [patch for patch in axis.patches if patch.get_gid() == SWA_GID]
    return [(patch.get_x(), patch.get_x() + patch.get_width()) for patch in spans]


def labels(axis) -> list[str]:
    return [text.get_text() for text in axis.texts]


def test_snapshot_epochs_of_the_sgdr_recipe_are_dashed_lines_at_their_ends(tmp_path):
    preview = preview_schedule("digits_sgdr_snapshots")
    assert (preview.steps_per_epoch, preview.snapshot_epochs) == (S, [3, 6, 9, 12, 15])
    (axis,) = preview_figure(preview).axes  # one panel: lr (SGD's momentum is constant)
    assert snapshot_lines(axis) == [69.0, 138.0, 207.0, 276.0, 345.0]
    assert labels(axis) == ["snapshot 3", "snapshot 6", "snapshot 9", "snapshot 12", "snapshot 15"]
    assert swa_spans(axis) == []
    # the LR curve itself runs to the end of the last step, 15 * 23 = 345
    curve = next(line for line in axis.lines if line.get_gid() is None and len(line.get_xdata()) > 2)
    assert (curve.get_xdata()[0], curve.get_xdata()[-1]) == (0, 345)
    assert "snapshots (ckpt_snapshot_epoch{N}.pth) after epochs (from 1): 3, 6, 9, 12, 15" in summary_text(preview)

    path = write_png(preview, tmp_path / "deep" / "schedule.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_swa_segment_is_shaded_and_snapshots_marked_on_every_panel(tmp_path):
    preview = preview_schedule("digits_onecycle", SWA_OVERRIDES)
    assert (preview.max_epochs, preview.steps_per_epoch, preview.snapshot_epochs) == (10, S, [4, 8])
    figure = preview_figure(preview)
    assert [axis.get_ylabel() for axis in figure.axes] == ["lr", "momentum"]  # OneCycleLR cycles momentum
    for axis in figure.axes:
        assert snapshot_lines(axis) == [92.0, 184.0]
        assert swa_spans(axis) == [(184.0, 230.0)]  # from 8 * 23 to the end, 10 * 23
    assert labels(figure.axes[0]) == ["snapshot 4", "snapshot 8", "SWA"]
    assert labels(figure.axes[1]) == []  # labels on the top panel only

    text = summary_text(preview)
    assert "snapshots (ckpt_snapshot_epoch{N}.pth) after epochs (from 1): 4, 8\n" in text
    assert "swa: epochs 8-9 (steps 184-229) follow SWALR (swa_lr 0.01, anneal_epochs 1);" in text
    assert write_png(preview, tmp_path / "swa.png").stat().st_size > 10_000


def test_a_resume_preview_marks_only_what_lies_in_the_steps_shown():
    # steps 46..91 shown (epochs 2 and 3 of S = 23): the snapshot after epoch 2 (step 46) was taken
    # before them, the one after epoch 4 lies beyond them; SWA from epoch 1 is shaded from step 46.
    figure = schedule_figure(range(46, 92), {"lr": {"default": [0.1] * 46}}, "resume", S, [1, 2, 3, 4, 5], 1)
    (axis,) = figure.axes
    assert snapshot_lines(axis) == [69.0, 92.0]
    assert swa_spans(axis) == [(46.0, 92.0)]
    assert labels(axis) == ["snapshot 3", "snapshot 4", "SWA"]
