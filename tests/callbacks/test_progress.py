"""The progress bar shows a step's loss beside the LR that step was trained with, read at refresh time only."""

from __future__ import annotations

import pytest
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from callbacks import Callback, ProgressBar
from trainer import Trainer


class DecayEveryStep(Callback):
    """Step k uses lr 0.1 / (k + 1)."""

    def on_train_batch_start(self, context):
        if context.opens_step:
            for group in context.optimizer.param_groups:
                group["lr"] = 0.1 / (context.global_step + 1)


class Watch(Callback):
    """After each batch: the bar's numbers; per step: the LR applied inside optimizer.step() and the loss."""

    def __init__(self, bar: ProgressBar):
        self.bar = bar
        self.shown: list[dict] = []
        self.applied: list[float] = []
        self.losses: list[float] = []
        self.counts_at_close: list[int] = []

    def on_training_start(self, context):
        context.optimizer.register_step_pre_hook(
            lambda optimizer, *_: self.applied.append(optimizer.param_groups[0]["lr"])
        )

    def on_train_batch_end(self, context):
        if context.closes_step:
            self.losses.append(context.loss.item())
        self.shown.append(dict(self.bar.shown))

    def on_train_loader_end(self, context):  # runs after the bar's own: the count it closed with
        self.counts_at_close.append(self.bar._bar.n)


def _train(tmp_path, bar: ProgressBar, **overrides) -> Watch:
    watch = Watch(bar)
    # silent_mode: no bar of the trainer's own; this one is a user callback, before the watcher.
    params = base_params(max_epochs=2, silent_mode=True, phase_callbacks=[DecayEveryStep(), bar, watch], **overrides)
    Trainer("bar", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(6))
    return watch


def test_every_refresh_shows_a_steps_loss_beside_that_steps_lr(tmp_path):
    watch = _train(tmp_path, ProgressBar(refresh_seconds=0.0), batch_accumulate=2)
    # 6 batches, accumulate 2: 3 steps per epoch; the bar refreshes at each step's last batch.
    closing = [shown for index, shown in enumerate(watch.shown) if index % 2 == 1]
    assert [shown["step"] for shown in closing] == list(range(6))
    assert [shown["lr"] for shown in closing] == watch.applied == [0.1 / (k + 1) for k in range(6)]
    assert [shown["loss"] for shown in closing] == watch.losses
    # Between refreshes (the opening batch of a window) the bar keeps the previous step's pair.
    assert [shown.get("step") for shown in watch.shown[2::2]] == [0, 1, 2, 3, 4]


def test_numbers_are_read_once_per_refresh_interval(tmp_path):
    watch = _train(tmp_path, ProgressBar(refresh_seconds=3600.0))
    # Each epoch starts a new bar that refreshes at once; nothing else within the hour.
    assert [shown["step"] for shown in watch.shown] == [0] * 6 + [6] * 6
    assert watch.shown[0]["lr"] == pytest.approx(0.1) and watch.shown[6]["lr"] == pytest.approx(0.1 / 7)
    assert watch.shown[0]["loss"] == watch.losses[0] and watch.shown[6]["loss"] == watch.losses[6]
    # The batch count reaches the bar at refreshes and in full when the epoch ends.
    assert watch.counts_at_close == [6, 6]
