"""The recipe path under torchrun: ``torchrun --nproc_per_node=2 -m trainer train RECIPE``, with a
ReduceLROnPlateau on the validation loss that only a loss reduced over both ranks steers right."""

from __future__ import annotations

import json

import pytest
from torchrun_launch import JOB_SCRIPT, torchrun

from trainer.preview import preview_schedule
from trainer.recipe import train_from_recipe

EPOCHS = 4
STEPS_PER_EPOCH = 8  # 256 training samples, 2 ranks x 16 per batch (or 1 x 32)

RECIPE = """\
experiment_name: ddp_plateau
ckpt_root_dir: {root}/runs_rank${{oc.env:RANK,0}}
device: cpu
imports: [{job}]
model: {{name: SmallMLP, params: {{in_features: 8, hidden: 16, num_classes: 4}}}}
dataset: {{name: ddp_plateau_data}}
dataloader: {{batch_size: 16, shuffle: false}}
training_hyperparams:
  max_epochs: {epochs}
  initial_lr: 0.1
  optimizer: SGD
  loss: CrossEntropyLoss
  lr_mode:
    ReduceLROnPlateau: {{mode: min, factor: 0.5, patience: 0, phase: VALIDATION_EPOCH_END, metric_name: loss}}
  phase_callbacks: [{{RankLRRecorder: {{out_dir: {root}/records}}}}]
  silent_mode: true
  tensorboard: false
  plots: false
"""


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    """The recipe trained by 2 processes under torchrun, then by one process with batches twice as large."""
    root = tmp_path_factory.mktemp("recipe")
    recipe = root / "ddp_plateau.yaml"
    recipe.write_text(RECIPE.format(root=root, job=JOB_SCRIPT, epochs=EPOCHS))
    launch = torchrun(["-m", "trainer", "train", str(recipe)]).check()
    train_from_recipe(str(recipe), overrides=["dataloader.batch_size=32", f"ckpt_root_dir={root}/single"])
    records = {
        name: json.loads((root / "records" / f"lrs_{name}.json").read_text())
        for name in ("world2_rank0", "world2_rank1", "world1_rank0")
    }
    return root, launch, records


def test_plateau_lowers_the_lr_at_the_same_step_on_both_ranks(recipe_run):
    _, _, records = recipe_run
    rank0, rank1, single = records["world2_rank0"], records["world2_rank1"], records["world1_rank0"]
    # Rank 0's own validation loss falls every epoch and rank 1's rises (ddp_job.plateau_datasets);
    # the loss reduced over both rises from epoch 1 on, so with patience 0 the LR halves after
    # epochs 1 and 2, on both ranks, as it does in one process over the same data.
    expected = [0.1] * (2 * STEPS_PER_EPOCH) + [0.05] * STEPS_PER_EPOCH + [0.025] * STEPS_PER_EPOCH
    assert rank0["lrs"] == expected
    assert rank1["lrs"] == expected
    assert single["lrs"] == expected
    assert rank0["valid_losses"] == rank1["valid_losses"]
    assert rank0["valid_losses"] == pytest.approx(single["valid_losses"], rel=1e-5)


def test_recipe_run_writes_its_files_from_rank_zero_only(recipe_run):
    root, launch, _ = recipe_run
    run_dir = root / "runs_rank0" / "ddp_plateau"
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "ckpt_best.pth",
        "ckpt_latest.pth",
        "metrics.csv",
        "recipe.yaml",
        "steps.csv",
    ]
    assert not (root / "runs_rank1").exists()  # rank 1's ckpt_root_dir, from ${oc.env:RANK}
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 1 + EPOCHS
    assert launch.stdout.count(f"trained {EPOCHS} epochs") >= 1


def test_schedule_preview_with_world_size_shows_the_sharded_clock(recipe_run, monkeypatch):
    root, _, records = recipe_run
    recipe = str(root / "ddp_plateau.yaml")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert preview_schedule(recipe).steps_per_epoch == 2 * STEPS_PER_EPOCH  # one process, batches of 16
    # WORLD_SIZE=2 phasetrain schedule RECIPE: the clock of the torchrun run, step for step.
    monkeypatch.setenv("WORLD_SIZE", "2")
    preview = preview_schedule(recipe)
    assert preview.steps_per_epoch == STEPS_PER_EPOCH
    assert len(preview.global_step) == len(records["world2_rank0"]["lrs"]) == EPOCHS * STEPS_PER_EPOCH
