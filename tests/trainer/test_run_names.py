"""Names that become files or folders are one path component: a run cannot write outside ckpt_root_dir."""

from __future__ import annotations

import re

import pytest
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from trainer import Trainer
from trainer.recipe import train_from_recipe

RULE = r"must be a single path component: not empty, no '/' or '\\', not '\.' or '\.\.', not an absolute path"

BAD_NAMES = ["../../../tmp/somewhere", "a/b", "a\\b", "/tmp/abs", ".", "..", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_trainer_refuses_an_experiment_name_that_is_not_one_component(tmp_path, name):
    with pytest.raises(ValueError, match=rf"Trainer: key 'experiment_name' {RULE}; got {re.escape(repr(name))}"):
        Trainer(name, ckpt_root_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_the_error_suggests_a_safe_name(tmp_path):
    with pytest.raises(ValueError, match=r"got '\.\./runs/exp1'\. For example 'runs_exp1'\.$"):
        Trainer("../runs/exp1", ckpt_root_dir=str(tmp_path))


def test_a_non_string_experiment_name_is_a_type_error(tmp_path):
    with pytest.raises(TypeError, match=r"Trainer: key 'experiment_name' must be a str, got int 3\."):
        Trainer(3, ckpt_root_dir=str(tmp_path))


def test_ckpt_root_dir_may_be_any_directory(tmp_path):
    root = tmp_path / "deep" / ".." / "runs"
    result = Trainer("ok", ckpt_root_dir=str(root)).train(tiny_mlp(), base_params(), tiny_loader())
    assert (tmp_path / "runs" / "ok" / "ckpt_latest.pth").is_file()
    assert result.ckpt_dir == str(root / "ok")


@pytest.mark.parametrize("key", ["ckpt_name", "ckpt_best_name"])
@pytest.mark.parametrize("name", ["../escape.pth", "sub/ckpt.pth", ".."])
def test_checkpoint_names_are_one_component(tmp_path, key, name):
    with pytest.raises(ValueError, match=rf"training_params: key '{key}' {RULE}, got {name!r}"):
        Trainer("run", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(**{key: name}), tiny_loader())
    assert list(tmp_path.iterdir()) == []


def test_test_loader_names_are_one_component(tmp_path):
    with pytest.raises(ValueError, match=rf"Trainer\.train: key 'test_loaders name' {RULE}; got '\.\./x'"):
        Trainer("run", ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(), base_params(), tiny_loader(), test_loaders={"../x": tiny_loader()}
        )
    assert list(tmp_path.iterdir()) == []


def test_a_recipe_cannot_write_outside_the_checkpoint_root(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=rf"key 'experiment_name' {RULE}; got '\.\./outside'"):
        train_from_recipe("digits_cosine", overrides=[f"ckpt_root_dir={root}", "experiment_name=../outside"])
    assert list(tmp_path.iterdir()) == []
