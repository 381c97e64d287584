"""Every shipped recipe trains, and for each: LR logged in steps.csv = LR applied = the preview."""

from __future__ import annotations

import pytest
from recipe_test_helpers import AppliedLR, quick, read_rows

from recipes import shipped_recipes
from trainer import Trainer
from trainer.preview import preview_schedule

pytest.importorskip("sklearn")

SHORT = {
    # recipe: extra overrides that keep its schedule interesting in a few epochs of 4 optimizer steps
    "digits_cosine": ["training_hyperparams.max_epochs=3"],
    "digits_step_warmup": [
        "training_hyperparams.max_epochs=4",
        "training_hyperparams.lr_warmup_steps=3",
        "training_hyperparams.lr_updates=[1, 2]",
    ],
    "digits_onecycle": ["training_hyperparams.batch_accumulate=2", "training_hyperparams.max_train_batches=5"],
    "digits_plateau": ["training_hyperparams.max_epochs=3"],
    "digits_sequential": ["training_hyperparams.max_epochs=4"],
    "digits_custom_scheduler": ["training_hyperparams.max_epochs=3", "training_hyperparams.user_lr_updates=[0, 1]"],
    # 3 epochs of 4 steps: the 30-step warmup lasts the run, the converted cosine joins it at step 4
    "digits_mmengine_style": ["training_hyperparams.max_epochs=3"],
    # 4 epochs in cycles of 1, 2, 4 ... epochs: restarts after epochs 1 and 3, snapshots there and after 4
    "digits_sgdr_snapshots": [
        "training_hyperparams.max_epochs=4",
        "training_hyperparams.restart_period_epochs=1",
        "training_hyperparams.restart_period_mult=2",
    ],
}


def test_every_shipped_recipe_has_a_short_run_here():
    assert sorted(SHORT) == shipped_recipes()


@pytest.mark.parametrize("name", sorted(SHORT))
def test_logged_lr_equals_applied_lr_equals_preview(name, tmp_path):
    overrides = quick(tmp_path) + SHORT[name]
    applied = AppliedLR()
    result = Trainer.train_from_recipe(name, overrides, callbacks=[applied])
    rows = read_rows(tmp_path / name / "steps.csv")
    preview = preview_schedule(name, overrides)

    assert [int(row["global_step"]) for row in rows] == list(range(result.global_step))
    assert preview.global_step == list(range(result.global_step))
    assert len(applied.rows) == result.global_step
    for column in applied.rows[0]:
        logged = [float(row[column]) for row in rows]
        assert logged == [step[column] for step in applied.rows], column
        if column in preview.values:
            assert logged == preview.values[column], column
    assert preview.epoch == [int(row["epoch"]) for row in rows]
    assert preview.batch_idx == [int(row["batch_idx"]) for row in rows]
    assert set(preview.values) <= set(applied.rows[0])
    assert len(set(preview.values["lr/default"])) > 1 or name == "digits_plateau"
    assert (tmp_path / name / "recipe.yaml").is_file()


def test_the_plateau_preview_says_it_assumes_no_plateau(tmp_path):
    preview = preview_schedule("digits_plateau", quick(tmp_path) + SHORT["digits_plateau"])
    assert set(preview.values["lr/default"]) == {0.05}
    assert any("as if the metric improves every epoch (no plateau)" in note for note in preview.notes)


def test_a_plateau_in_training_lowers_the_lr_the_preview_cannot_know(tmp_path):
    overrides = quick(tmp_path) + [
        "training_hyperparams.max_epochs=3",
        "training_hyperparams.lr_mode.ReduceLROnPlateau.patience=0",
        "training_hyperparams.lr_mode.ReduceLROnPlateau.threshold=10.0",  # no epoch counts as an improvement
    ]
    Trainer.train_from_recipe("digits_plateau", overrides)
    lrs = [float(row["lr/default"]) for row in read_rows(tmp_path / "digits_plateau" / "metrics.csv")]
    assert lrs == [0.05, 0.025, 0.0125]
