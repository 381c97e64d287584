"""Recipe loading: shipped names, defaults presets, interpolation, overrides, key validation, imports."""

from __future__ import annotations

import re
import sys
import textwrap

import pytest

from recipes import RECIPES_DIR, shipped_recipes
from trainer.recipe import build_datasets, build_loaders, build_model, find_recipe, load_recipe
from trainer.recipe_loading import RECIPE_KEYS

MINIMAL = {
    "experiment_name": "tiny",
    "model": {"name": "SmallMLP", "params": {"in_features": 16, "hidden": 8, "num_classes": 4}},
    "dataset": {"name": "synthetic", "params": {"num_samples": 40}},
    "dataloader": {"batch_size": 8},
    "training_hyperparams": {"max_epochs": 1, "initial_lr": 0.1, "loss": "CrossEntropyLoss"},
}


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_recipes_are_found_by_name_with_or_without_suffix():
    assert {"digits_cosine", "digits_step_warmup", "digits_onecycle", "digits_plateau", "digits_sequential"} <= set(
        shipped_recipes()
    )
    assert find_recipe("digits_cosine") == RECIPES_DIR / "digits_cosine.yaml"
    assert find_recipe("digits_cosine.yaml") == RECIPES_DIR / "digits_cosine.yaml"


def test_unknown_recipe_lists_the_shipped_ones_with_the_closest():
    with pytest.raises(
        FileNotFoundError, match=r"'digits_cosin'.*Shipped recipes: .*digits_cosine.*Did you mean 'digits_cosine'"
    ):
        load_recipe("digits_cosin")


def test_a_path_loads_and_section_defaults_are_filled_in(tmp_path):
    path = write(
        tmp_path / "r.yaml",
        """
        experiment_name: tiny
        model: {name: SmallMLP}
        dataset: {name: synthetic}
        dataloader: {batch_size: 8}
        training_hyperparams: {max_epochs: 1, initial_lr: 0.1, loss: CrossEntropyLoss}
        """,
    )
    recipe = load_recipe(path)
    assert recipe.config["dataloader"] == {
        "batch_size": 8,
        "valid_batch_size": None,
        "shuffle": True,
        "drop_last": False,
        "num_workers": 0,
    }
    assert recipe.config["ckpt_root_dir"] == "checkpoints"
    assert recipe.config["model"] == {"name": "SmallMLP", "params": {}}
    nulls = load_recipe(path, ["imports=null", "model.params=null", "dataloader.shuffle=null"]).config
    assert (nulls["imports"], nulls["model"]["params"], nulls["dataloader"]["shuffle"]) == ([], {}, True)
    assert list(recipe.config)[0] == "experiment_name"
    assert recipe.base_dir == tmp_path


def test_defaults_merge_in_order_under_the_recipe_and_nest(tmp_path):
    write(tmp_path / "presets" / "inner.yaml", "training_hyperparams: {max_epochs: 7, initial_lr: 0.5, seed: 3}\n")
    write(
        tmp_path / "presets" / "base.yaml",
        """
        defaults: [inner.yaml]
        model: {name: SmallMLP, params: {in_features: 16, hidden: 8, num_classes: 4}}
        dataset: {name: synthetic}
        dataloader: {batch_size: 8, drop_last: true}
        training_hyperparams: {initial_lr: 0.2, loss: CrossEntropyLoss}
        """,
    )
    write(tmp_path / "presets" / "more.yaml", "training_hyperparams: {initial_lr: 0.3, silent_mode: true}\n")
    path = write(
        tmp_path / "r.yaml",
        """
        defaults: [presets/base.yaml, presets/more]
        experiment_name: layered
        dataloader: {batch_size: 4}
        training_hyperparams: {seed: 5}
        """,
    )
    config = load_recipe(path).config
    assert config["training_hyperparams"] == {
        "max_epochs": 7,
        "initial_lr": 0.3,
        "seed": 5,
        "loss": "CrossEntropyLoss",
        "silent_mode": True,
    }
    assert config["dataloader"]["batch_size"] == 4 and config["dataloader"]["drop_last"] is True
    assert "defaults" not in config


def test_interpolation_and_overrides_resolve_after_merging(tmp_path):
    path = write(
        tmp_path / "r.yaml",
        """
        experiment_name: interp_${training_hyperparams.max_epochs}
        model: {name: SmallMLP, params: {in_features: 16, hidden: 8, num_classes: 4}}
        dataset: {name: synthetic}
        dataloader: {batch_size: 8, valid_batch_size: "${dataloader.batch_size}"}
        training_hyperparams:
          max_epochs: 2
          initial_lr: 0.1
          loss: CrossEntropyLoss
          valid_metrics_list: [{Accuracy: {task: multiclass, num_classes: "${model.params.num_classes}"}}]
          optimizer_params: {weight_decay: 1e-4}
        """,
    )
    config = load_recipe(
        path, ["training_hyperparams.max_epochs=5", "dataloader.batch_size=16", "model.params.num_classes=6"]
    ).config
    assert config["experiment_name"] == "interp_5"
    assert config["dataloader"]["valid_batch_size"] == 16
    assert config["training_hyperparams"]["valid_metrics_list"] == [
        {"Accuracy": {"task": "multiclass", "num_classes": 6}}
    ]
    assert config["training_hyperparams"]["optimizer_params"] == {"weight_decay": 0.0001}


def test_override_values_are_typed():
    config = load_recipe(
        MINIMAL,
        [
            "training_hyperparams.resume=true",
            "training_hyperparams.lr_updates=[2, 4]",
            "training_hyperparams.initial_lr={default: 0.1, net.1: 0.01}",
            "training_hyperparams.clip_grad_norm=null",
        ],
    ).config
    assert config["training_hyperparams"]["resume"] is True
    assert config["training_hyperparams"]["lr_updates"] == [2, 4]
    assert config["training_hyperparams"]["initial_lr"] == {"default": 0.1, "net.1": 0.01}
    assert config["training_hyperparams"]["clip_grad_norm"] is None


def test_a_layer_naming_another_scheduler_replaces_lr_mode_instead_of_mixing(tmp_path):
    write(
        tmp_path / "base.yaml",
        """
        training_hyperparams:
          lr_mode: {OneCycleLR: {max_lr: 0.2, total_steps: auto, phase: TRAIN_BATCH_STEP}}
        model: {name: SmallMLP, params: {hidden: 8}}
        """,
    )
    recipe = dict(MINIMAL, defaults=["base.yaml"], model={"name": "SmallCNN"})
    path = write(tmp_path / "r.yaml", "")
    from omegaconf import OmegaConf

    OmegaConf.save(OmegaConf.create(recipe), path)
    same = load_recipe(path, ["training_hyperparams.lr_mode.OneCycleLR.max_lr=0.4"]).config
    assert same["training_hyperparams"]["lr_mode"] == {
        "OneCycleLR": {"max_lr": 0.4, "total_steps": "auto", "phase": "TRAIN_BATCH_STEP"}
    }
    assert same["model"] == {"name": "SmallCNN", "params": {}}  # SmallMLP's params do not leak into SmallCNN
    other = load_recipe(path, ["training_hyperparams.lr_mode={StepLR: {step_size: 1}}"]).config
    assert other["training_hyperparams"]["lr_mode"] == {"StepLR": {"step_size": 1}}
    named = load_recipe(path, ["training_hyperparams.lr_mode=CosineLRScheduler"]).config
    assert named["training_hyperparams"]["lr_mode"] == "CosineLRScheduler"


@pytest.mark.parametrize(
    ("change", "error", "pattern"),
    [
        ({"experiment_nam": "x"}, ValueError, r"unknown key 'experiment_nam'\. Did you mean 'experiment_name'\?"),
        (
            {"dataloader": {"batch_sise": 8}},
            ValueError,
            r"unknown key 'dataloader\.batch_sise'\. Did you mean 'batch_size'\?",
        ),
        (
            {"model": {"name": "SmallMLP", "param": {}}},
            ValueError,
            r"unknown key 'model\.param'\. Did you mean 'params'\?",
        ),
        ({"dataset": {"params": {}}}, ValueError, r"missing required key 'dataset\.name'"),
        ({"dataloader": {"batch_size": 0}}, ValueError, r"'dataloader\.batch_size' must be >= 1, got 0"),
        ({"dataloader": {"batch_size": 8, "num_workers": -1}}, ValueError, r"'dataloader\.num_workers' must be >= 0"),
        ({"dataloader": {"batch_size": "8"}}, TypeError, r"'dataloader\.batch_size' must be int, got str '8'"),
        ({"dataloader": {"batch_size": 8, "shuffle": "yes"}}, TypeError, r"'dataloader\.shuffle' must be bool"),
        ({"imports": "my.module"}, TypeError, r"key 'imports' must be list of str"),
        ({"model": ["SmallMLP"]}, TypeError, r"key 'model' must be mapping"),
        ({"training_hyperparams": None}, ValueError, r"missing required key 'training_hyperparams'"),
        (
            {"experiment_name": "${nowhere.at_all}"},
            ValueError,
            r"cannot resolve an interpolation: Interpolation key 'nowhere\.at_all'",
        ),
    ],
)
def test_bad_recipe_keys_are_errors_naming_the_key(change, error, pattern):
    with pytest.raises(error, match=pattern):
        load_recipe({**MINIMAL, **change})


def test_missing_top_level_key():
    recipe = dict(MINIMAL)
    del recipe["dataloader"]
    with pytest.raises(ValueError, match=r"recipe \(from a mapping\): missing required key 'dataloader'"):
        load_recipe(recipe)


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("training_hyperparams.max_epochs", r"override 'training_hyperparams\.max_epochs' is not 'key=value'"),
        ("=3", r"override '=3' is not 'key=value'"),
        (
            "trainig_hyperparams.max_epochs=3",
            r"unknown key 'trainig_hyperparams'\. Did you mean 'training_hyperparams'\?",
        ),
    ],
)
def test_bad_overrides(override, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_recipe(MINIMAL, [override])


def test_defaults_errors(tmp_path):
    path = write(tmp_path / "r.yaml", "defaults: [missing.yaml]\n")
    with pytest.raises(FileNotFoundError, match=r"defaults entry 'missing\.yaml': no file .*missing\.yaml"):
        load_recipe(path)
    write(tmp_path / "a.yaml", "defaults: [b.yaml]\n")
    write(tmp_path / "b.yaml", "defaults: [a.yaml]\n")
    with pytest.raises(
        ValueError, match=r"defaults entry 'a\.yaml' includes itself: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"
    ):
        load_recipe(tmp_path / "a.yaml")
    with pytest.raises(TypeError, match=r"key 'defaults' must be a list of YAML file paths"):
        load_recipe({**MINIMAL, "defaults": "base.yaml"})
    bad = write(tmp_path / "bad.yaml", "experiment_name: [unclosed\n")
    with pytest.raises(ValueError, match=r"cannot read .*bad\.yaml.* as YAML"):
        load_recipe(bad)
    listed = write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(ValueError, match=r"must hold a mapping of recipe keys, got list"):
        load_recipe(listed)


def test_a_recipe_of_the_wrong_type():
    with pytest.raises(
        TypeError, match=r"recipe: expected a shipped recipe name, a path, a dict or a DictConfig, got int 3"
    ):
        load_recipe(3)


def test_models_and_datasets_resolve_by_name_or_import_path():
    recipe = load_recipe(MINIMAL)
    model = build_model(recipe)
    assert type(model).__name__ == "SmallMLP" and model.net[1].out_features == 8
    train_set, valid_set = build_datasets(recipe)
    assert (len(train_set), len(valid_set)) == (30, 10)
    train_loader, valid_loader = build_loaders(recipe, train_set, valid_set, seed=0)
    assert (len(train_loader), len(valid_loader)) == (4, 2)
    by_path = load_recipe(
        {
            **MINIMAL,
            "model": {"name": "torch.nn:Linear", "params": {"in_features": 16, "out_features": 4}},
            "dataset": {"name": "trainer.data:synthetic"},
        }
    )
    assert type(build_model(by_path)).__name__ == "Linear"
    assert len(build_datasets(by_path)[0]) == 384


@pytest.mark.parametrize(
    ("section", "pattern"),
    [
        (
            {"model": {"name": "SmallCN"}},
            r"key 'model\.name': unknown model 'SmallCN'\. Registered: .*SmallCNN.*Did you mean 'SmallCNN'\?",
        ),
        (
            {"dataset": {"name": "digit"}},
            r"key 'dataset\.name': unknown dataset 'digit'\. Registered: .*Did you mean 'digits'\?",
        ),
        (
            {"model": {"name": "SmallMLP", "params": {"hiden": 3}}},
            r"key 'model\.params': 'SmallMLP' has no parameter 'hiden'\. Did you mean 'hidden'\? Accepted: in_features, hidden, num_classes",
        ),
        (
            {"dataset": {"name": "synthetic", "params": {"num_sample": 3}}},
            r"key 'dataset\.params': 'synthetic' has no parameter 'num_sample'\. Did you mean 'num_samples'\?",
        ),
        ({"model": {"name": "torch.nn:Nothing"}}, r"key 'model\.name': module 'torch\.nn' has no attribute 'Nothing'"),
        ({"model": {"name": "no_such_module:Net"}}, r"cannot import module 'no_such_module'"),
    ],
)
def test_unknown_names_and_params(section, pattern):
    recipe = load_recipe({**MINIMAL, **section})
    with pytest.raises(ValueError, match=pattern):
        build_model(recipe) if "model" in section else build_datasets(recipe)


def test_wrong_kinds_of_objects():
    recipe = load_recipe({**MINIMAL, "model": {"name": "trainer.data:synthetic"}})
    with pytest.raises(TypeError, match=r"'trainer\.data:synthetic' gave a tuple, not an nn\.Module"):
        build_model(recipe)
    recipe = load_recipe({**MINIMAL, "dataset": {"name": "torch.nn:Identity"}})
    with pytest.raises(
        TypeError,
        match=r"'torch\.nn:Identity' must return \(train_set, valid_set or None\) with sized data sets, got Identity",
    ):
        build_datasets(recipe)
    recipe = load_recipe({**MINIMAL, "dataset": {"name": "synthetic", "params": {"num_samples": "many"}}})
    with pytest.raises(TypeError, match=r"key 'dataset\.params': synthetic\(\*\*\{'num_samples': 'many'\}\) failed: "):
        build_datasets(recipe)
    recipe = load_recipe({**MINIMAL, "dataset": {"name": "digits", "params": {"valid_fraction": 2}}})
    with pytest.raises(
        ValueError,
        match=r"digits\(\*\*\{'valid_fraction': 2\}\) failed: dataset digits: valid_fraction must be in \(0, 1\)",
    ):
        build_datasets(recipe)


def test_imports_by_module_name_and_by_file_relative_to_the_recipe(tmp_path, monkeypatch):
    module = "phasetrain_test_plugin_model"
    write(
        tmp_path / "plugins" / f"{module}.py",
        """
        import torch
        from registry import register_model

        @register_model("PluginNet")
        class PluginNet(torch.nn.Linear):
            def __init__(self, width: int = 3):
                super().__init__(16, width)
        """,
    )
    recipe = {**MINIMAL, "imports": [f"plugins/{module}.py"], "model": {"name": "PluginNet", "params": {"width": 5}}}
    path = write(tmp_path / "r.yaml", "")
    from omegaconf import OmegaConf

    OmegaConf.save(OmegaConf.create(recipe), path)
    monkeypatch.delitem(sys.modules, module, raising=False)
    assert build_model(load_recipe(path)).out_features == 5
    assert build_model(load_recipe(path)).out_features == 5  # importing twice is harmless
    with pytest.raises(ValueError, match=r"key 'imports': cannot import module 'no_such_plugin'"):
        load_recipe({**MINIMAL, "imports": ["no_such_plugin"]})
    with pytest.raises(ValueError, match=r"key 'imports': no file .*nothing\.py"):
        load_recipe({**MINIMAL, "imports": ["nothing.py"]})
    write(tmp_path / "other" / "re.py", "")
    with pytest.raises(ValueError, match=re.escape("would be imported as module 're', but that name is taken")):
        load_recipe({**MINIMAL, "imports": [str(tmp_path / "other" / "re.py")]})


def test_every_recipe_key_is_documented():
    docs = (RECIPES_DIR.parent / "docs" / "recipes.md").read_text()
    for key in RECIPE_KEYS:
        assert f"| `{key}` |" in docs, key
