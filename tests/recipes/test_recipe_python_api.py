"""The Python API: Trainer.train_from_recipe, and a recipe as a Python dict gives the same run."""

from __future__ import annotations

import pytest
import yaml
from recipe_test_helpers import quick, read_rows
from torch.utils.data import DataLoader

from recipes import RECIPES_DIR
from trainer import Trainer, seed_everything
from trainer.recipe import load_recipe

pytest.importorskip("sklearn")


def test_the_recipe_as_python_objects_through_trainer_train_gives_the_same_run(tmp_path):
    from trainer.data import digits
    from trainer.models import SmallCNN

    overrides = quick(tmp_path / "yaml", max_epochs=3)
    from_yaml = Trainer.train_from_recipe("digits_cosine", overrides)

    # The same recipe written by hand in Python, as the README's Python API does it.
    recipe = yaml.safe_load((RECIPES_DIR / "digits_cosine.yaml").read_text())
    training_params = dict(recipe["training_hyperparams"])
    training_params["optimizer_params"] = {"momentum": 0.9, "weight_decay": 1e-4}  # YAML 1.1 reads 1e-4 as a string
    training_params.update(max_epochs=3, max_train_batches=4, max_valid_batches=2, silent_mode=True, plots=False)
    seed_everything(training_params.get("seed", 42))
    model = SmallCNN(num_classes=10)
    train_set, valid_set = digits(valid_fraction=0.2, seed=0)
    result = Trainer("digits_cosine", ckpt_root_dir=str(tmp_path / "python")).train(
        model, training_params, DataLoader(train_set, batch_size=64, shuffle=True), DataLoader(valid_set, batch_size=64)
    )

    yaml_rows = read_rows(tmp_path / "yaml" / "digits_cosine" / "steps.csv")
    python_rows = read_rows(tmp_path / "python" / "digits_cosine" / "steps.csv")
    assert [row["lr/default"] for row in python_rows] == [row["lr/default"] for row in yaml_rows]
    assert python_rows == yaml_rows  # same seeds, same data order: the same losses too
    assert result.best_metric == from_yaml.best_metric


def test_train_from_recipe_takes_a_dict_and_returns_the_result(tmp_path):
    recipe = load_recipe("digits_cosine", quick(tmp_path)).config
    recipe["experiment_name"] = "from_dict"
    result = Trainer.train_from_recipe(recipe, ["training_hyperparams.max_train_batches=2"])
    assert result.global_step == 4 and result.epochs_run == 2
    assert result.ckpt_dir == str(tmp_path / "from_dict")
    written = load_recipe(tmp_path / "from_dict" / "recipe.yaml").config
    assert written["training_hyperparams"]["max_train_batches"] == 2
    assert written == load_recipe(recipe, ["training_hyperparams.max_train_batches=2"]).config


def test_the_written_recipe_reruns_the_same_run(tmp_path):
    first = Trainer.train_from_recipe(
        "digits_step_warmup", quick(tmp_path / "a") + ["training_hyperparams.lr_warmup_steps=3"]
    )
    rerun = Trainer.train_from_recipe(
        tmp_path / "a" / "digits_step_warmup" / "recipe.yaml", [f"ckpt_root_dir={tmp_path / 'b'}"]
    )
    assert rerun.best_metric == first.best_metric
    assert read_rows(tmp_path / "b" / "digits_step_warmup" / "steps.csv") == read_rows(
        tmp_path / "a" / "digits_step_warmup" / "steps.csv"
    )


def test_bad_training_hyperparams_fail_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"training_params: unknown key 'max_epoch'.*Did you mean 'max_epochs'\?"):
        Trainer.train_from_recipe("digits_cosine", [f"ckpt_root_dir={tmp_path}", "training_hyperparams.max_epoch=3"])
    with pytest.raises(ValueError, match=r"unknown key 'cosine_final_lr_rato'.*Did you mean 'cosine_final_lr_ratio'\?"):
        Trainer.train_from_recipe(
            "digits_cosine", [f"ckpt_root_dir={tmp_path}", "training_hyperparams.cosine_final_lr_rato=0.1"]
        )
    assert not (tmp_path / "digits_cosine").exists()
