"""Recipes: build the model, data and loaders a recipe names, and train from it.

A recipe is YAML (or a dict) with ``experiment_name``, ``model``, ``dataset``, ``dataloader`` and
``training_hyperparams``; loading, merging and validation live in ``trainer.recipe_loading``.
docs/recipes.md describes every key.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from registry import DATASETS, MODELS, Registry, did_you_mean, import_from_path
from trainer.recipe_loading import RECIPE_KEYS, Recipe, find_recipe, load_recipe
from trainer.run_names import check_path_component
from trainer.trainer import Trainer, TrainResult, seed_everything

RECIPE_FILE = "recipe.yaml"

__all__ = [
    "RECIPE_FILE",
    "RECIPE_KEYS",
    "Recipe",
    "build_datasets",
    "build_loaders",
    "build_model",
    "find_recipe",
    "load_recipe",
    "resolve_recipe_training_params",
    "train_from_recipe",
]


def _register_builtins() -> None:
    """Import the modules that register the built-in models and data sets (cheap: no sklearn)."""
    import trainer.data  # noqa: F401
    import trainer.models  # noqa: F401


def resolve_name(value: str, registry: Registry, key: str, where: str) -> Callable:
    """A registered name or a ``"package.module:Name"`` import path, as the object it names.

    Raises:
        ValueError: unknown name (with the registered names and the closest one) or a bad import path.
    """
    _register_builtins()
    if ":" in value:
        return import_from_path(value, f"{where}: key {key!r}")
    if value not in registry:
        names = registry.names()
        raise ValueError(
            f"{where}: key {key!r}: unknown {registry.kind} {value!r}. Registered: {', '.join(names)}."
            f"{did_you_mean(value, names)} Or give an import path 'package.module:Name'."
        )
    return registry.get(value)


def _call_with_params(factory: Callable, params: dict[str, Any], key: str, where: str) -> Any:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None and not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        accepted = [name for name in signature.parameters if name != "self"]
        for name in params:
            if name not in accepted:
                raise ValueError(
                    f"{where}: key {key!r}: {getattr(factory, '__name__', factory)!r} has no parameter {name!r}."
                    f"{did_you_mean(name, accepted)} Accepted: {', '.join(accepted)}."
                )
    try:
        return factory(**params)
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"{where}: key {key!r}: {getattr(factory, '__name__', factory)}(**{params}) failed: {error}"
        ) from error


def build_model(recipe: Recipe) -> torch.nn.Module:
    """The model named by ``model.name``, built with ``model.params``.

    Raises:
        ValueError: unknown name or parameter.
        TypeError: the name does not give an nn.Module.
    """
    section = recipe.config["model"]
    factory = resolve_name(section["name"], MODELS, "model.name", recipe.where)
    model = _call_with_params(factory, dict(section["params"] or {}), "model.params", recipe.where)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"{recipe.where}: key 'model.name': {section['name']!r} gave a {type(model).__name__}, not an nn.Module."
        )
    return model


def build_datasets(recipe: Recipe) -> tuple[Any, Any]:
    """(train set, valid set or None) from the data set function named by ``dataset.name``.

    Raises:
        ValueError: unknown name or parameter.
        TypeError: the function does not return a (train, valid) pair.
    """
    section = recipe.config["dataset"]
    factory = resolve_name(section["name"], DATASETS, "dataset.name", recipe.where)
    sets = _call_with_params(factory, dict(section["params"] or {}), "dataset.params", recipe.where)
    if not isinstance(sets, (tuple, list)) or len(sets) != 2 or not hasattr(sets[0], "__len__"):
        raise TypeError(
            f"{recipe.where}: key 'dataset.name': {section['name']!r} must return (train_set, valid_set or None) "
            f"with sized data sets, got {type(sets).__name__}."
        )
    return sets[0], sets[1]


def build_loaders(recipe: Recipe, train_set: Any, valid_set: Any, seed: int | None) -> tuple[Any, Any]:
    """The train and valid DataLoaders of ``dataloader`` (sharded by a DistributedSampler under torchrun)."""
    from trainer.distributed import build_loader

    section = recipe.config["dataloader"]
    train_loader = build_loader(
        train_set,
        batch_size=section["batch_size"],
        shuffle=section["shuffle"],
        drop_last=section["drop_last"],
        num_workers=section["num_workers"],
        seed=seed or 0,
    )
    valid_loader = None
    if valid_set is not None:
        valid_loader = build_loader(
            valid_set,
            batch_size=section["valid_batch_size"] or section["batch_size"],
            shuffle=False,
            drop_last=False,
            num_workers=section["num_workers"],
            seed=seed or 0,
        )
    return train_loader, valid_loader


def resolve_recipe_training_params(recipe: Recipe):
    """The recipe's training_hyperparams merged over the defaults and validated (as Trainer.train does).

    Raises:
        ValueError, TypeError: a bad training param.
    """
    import schedulers
    from trainer.params import resolve_training_params

    return resolve_training_params(recipe.config["training_hyperparams"], extra_known_keys=schedulers.lr_param_names)


def run_dir_of(recipe: Recipe) -> Path:
    """``<ckpt_root_dir>/<experiment_name>``: where the run's checkpoints and logs go.

    Raises:
        ValueError: ``experiment_name`` is not a single path component (trainer.run_names).
    """
    name = check_path_component(recipe.config["experiment_name"], recipe.where, "experiment_name")
    return Path(recipe.config["ckpt_root_dir"]) / name


def is_rank_zero() -> bool:
    """True in the process that writes files and prints (rank 0 of a torchrun launch, or the only one)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def train_from_recipe(recipe: Any, overrides: list[str] | None = None, callbacks: list | None = None) -> TrainResult:
    """Train the model of a recipe on its data with its training params.

    The recipe's keys and training params are validated before any data is loaded or file written
    (the LR schedule checks its own parameters when the trainer builds it). Rank 0 writes the
    resolved recipe to ``<run dir>/recipe.yaml`` (rerunnable as it is), then training writes
    checkpoints and logs next to it.

    Args:
        recipe: a shipped recipe name, a path, a dict, a DictConfig or a loaded Recipe.
        overrides: dotted ``key=value`` strings applied on top.
        callbacks: Callback instances appended to ``training_hyperparams.phase_callbacks``.

    Returns:
        The TrainResult (``ckpt_dir`` is the run directory).

    Raises:
        FileNotFoundError, ValueError, TypeError: a bad recipe.
    """
    loaded = load_recipe(recipe, overrides)
    params = resolve_recipe_training_params(loaded)
    run_dir_of(loaded)  # checks experiment_name before any data is loaded
    if params.seed is not None:
        seed_everything(params.seed)
    model = build_model(loaded)
    train_set, valid_set = build_datasets(loaded)
    train_loader, valid_loader = build_loaders(loaded, train_set, valid_set, params.seed)
    if is_rank_zero():
        run_dir = run_dir_of(loaded)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / RECIPE_FILE).write_text(loaded.to_yaml())
    training_params = dict(loaded.config["training_hyperparams"])
    if callbacks:
        training_params["phase_callbacks"] = [*(training_params.get("phase_callbacks") or []), *callbacks]
    trainer = Trainer(
        loaded.config["experiment_name"], ckpt_root_dir=loaded.config["ckpt_root_dir"], device=loaded.config["device"]
    )
    return trainer.train(model, training_params, train_loader, valid_loader)
