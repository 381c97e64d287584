"""The schedule preview: the loop's clock, param groups, momentum, the printed summary, the files."""

from __future__ import annotations

import copy

import pytest
from recipe_test_helpers import read_rows

from trainer import Trainer
from trainer.preview import milestones, preview_schedule, summary_text, write_csv

# 512 synthetic samples, 384 of them for training; batches of 50 with drop_last: 7 batches per epoch.
SYNTHETIC = {
    "experiment_name": "preview",
    "model": {"name": "SmallMLP", "params": {"in_features": 16, "hidden": 8, "num_classes": 4}},
    "dataset": {"name": "synthetic"},
    "dataloader": {"batch_size": 50, "drop_last": True},
    "training_hyperparams": {
        "max_epochs": 3,
        "initial_lr": {"net.1": 0.2, "default": 0.1},
        "zero_weight_decay_on_bias_and_bn": True,
        "optimizer_params": {"momentum": 0.9, "weight_decay": 1e-4},
        "loss": "CrossEntropyLoss",
        "batch_accumulate": 3,
        "lr_mode": "CosineLRScheduler",
        "warmup_mode": "LinearBatchLRWarmup",
        "lr_warmup_steps": 2,
        "silent_mode": True,
    },
}


def recipe(**training_overrides):
    config = copy.deepcopy(SYNTHETIC)
    config["training_hyperparams"].update(training_overrides)
    return config


def test_the_clock_follows_drop_last_accumulation_and_max_train_batches():
    preview = preview_schedule(recipe())
    # 7 batches, accumulate 3: steps close at batches 2, 5 and 6 (the short last window steps too).
    assert preview.steps_per_epoch == 3
    assert preview.global_step == list(range(9))
    assert preview.epoch == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert preview.batch_idx == [2, 5, 6] * 3
    limited = preview_schedule(recipe(max_train_batches=4))
    assert limited.batch_idx == [2, 3] * 3


def test_each_param_group_gets_its_column_and_momentum_only_where_it_changes():
    preview = preview_schedule(recipe())
    assert list(preview.values) == ["lr/net.1", "lr/net.1#2", "lr/default", "lr/default#2"]
    # Per-step warmup of 2 steps from lr0 / 3, then the cosine: each group with its own lr0.
    assert preview.values["lr/net.1"][:3] == [0.2 / 3, 0.2 / 3 + (0.2 - 0.2 / 3) / 2, 0.2]
    assert preview.values["lr/default"][2] == 0.1
    assert preview.values["lr/net.1"] == preview.values["lr/net.1#2"]
    onecycle = preview_schedule(
        recipe(lr_mode={"OneCycleLR": {"max_lr": 0.5, "total_steps": "auto"}}, lr_warmup_steps=0)
    )
    assert list(onecycle.values) == [
        "lr/net.1", "lr/net.1#2", "lr/default", "lr/default#2",
        "momentum/net.1", "momentum/net.1#2", "momentum/default", "momentum/default#2",
    ]  # fmt: skip
    assert onecycle.values["momentum/default"][0] == 0.95


def test_the_preview_equals_the_logged_lr_of_a_run_with_groups_accumulation_and_warmup(tmp_path):
    config = recipe()
    config["ckpt_root_dir"] = str(tmp_path)
    result = Trainer.train_from_recipe(config)
    rows = read_rows(tmp_path / "preview" / "steps.csv")
    preview = preview_schedule(config)
    assert result.global_step == 9
    for column, values in preview.values.items():
        assert [float(row[column]) for row in rows] == values, column
    assert [int(row["batch_idx"]) for row in rows] == preview.batch_idx


def test_summary_names_warmup_milestones_extremes_and_epoch_starts():
    text = summary_text(preview_schedule(recipe(max_epochs=4)))
    assert (
        "clock: 4 epochs x 3 optimizer steps = 12 steps (384 training samples, batch_size 50, drop_last True -> 7 batches"
        in text
    )
    assert "warmup: steps 0-1; step 2 (epoch 0) uses lr/net.1 0.2" in text
    assert "lr/default: min 0.00" in text and "max 0.1 at step 2" in text
    assert "lr/net.1#2: same as lr/net.1\n" in text
    assert "epoch  first step  lr/net.1   lr/default\n0      0           0.0666667  0.0333333\n" in text

    step = summary_text(
        preview_schedule(
            recipe(max_epochs=6, lr_mode="StepLRScheduler", lr_updates=[1, 3], lr_decay_factor=0.5, lr_warmup_steps=0)
        )
    )
    assert "lr/default milestones (jumps after a constant stretch): step 6 (epoch 2: 0.05), 12 (epoch 4: 0.025)" in step

    constant = summary_text(preview_schedule(recipe(lr_mode=None, lr_warmup_steps=0)))
    assert "lr/default: constant 0.1" in constant

    per_epoch = summary_text(
        preview_schedule(recipe(max_epochs=8, lr_mode={"ExponentialLR": {"gamma": 0.5}}, lr_warmup_steps=0))
    )
    assert "lr/default changes at 7 epoch starts (a per-epoch schedule; see the table)" in per_epoch

    long = summary_text(preview_schedule(recipe(max_epochs=70)), max_rows=30)
    assert "value at each epoch start (every 3th epoch; the CSV has every step):" in long
    assert "\n69     207 " in long  # the last epoch is always shown


def test_plateau_is_previewed_as_if_the_metric_keeps_improving():
    for mode in ("min", "max"):
        lr_mode = {
            "ReduceLROnPlateau": {"mode": mode, "patience": 0, "phase": "TRAIN_EPOCH_END", "metric_name": "loss"}
        }
        preview = preview_schedule(recipe(lr_mode=lr_mode, lr_warmup_steps=0, max_epochs=5))
        assert set(preview.values["lr/default"]) == {0.1}, mode
        assert "as if the metric improves every epoch (no plateau)" in summary_text(preview)


def test_csv_reads_back_exactly(tmp_path):
    preview = preview_schedule(recipe())
    rows = read_rows(write_csv(preview, tmp_path / "deep" / "schedule.csv"))
    assert list(rows[0]) == ["global_step", "epoch", "batch_idx", *preview.values]
    assert [float(row["lr/net.1"]) for row in rows] == preview.values["lr/net.1"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 1, 1, 0.5, 0.5, 0.1], [3, 5]),
        ([1, 0.9, 0.8, 0.7], []),
        ([0.5, 0.5, 1, 0.9, 0.8], [2]),
    ],
)
def test_milestones_are_jumps_after_a_constant_stretch(values, expected):
    assert milestones(values) == expected
