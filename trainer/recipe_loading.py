"""Find, merge and validate YAML recipes: ``defaults`` presets, ``key=value`` overrides, interpolation.

Layers are merged in this order, each on top of the previous: the ``defaults`` files (in list
order, each with its own defaults first), the recipe itself, then the overrides. Mappings merge
key by key; any other value replaces. One exception: when a layer names a different model, data set
or ``lr_mode`` scheduler than the layer below, its params replace the lower ones instead of mixing
with them (``lr_mode: {StepLR: ...}`` over ``{OneCycleLR: ...}`` must not give both).
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipes import RECIPES_DIR, shipped_recipes
from registry import did_you_mean


@dataclass(frozen=True)
class RecipeKey:
    """One recipe key: the types it accepts, its default (``REQUIRED`` when none) and its doc."""

    types: str
    default: Any
    doc: str


REQUIRED = object()

RECIPE_KEYS: dict[str, RecipeKey] = {
    "experiment_name": RecipeKey(
        "str", REQUIRED, "Name of the run; its directory is <ckpt_root_dir>/<experiment_name>."
    ),
    "description": RecipeKey("str or None", None, "One line shown by `phasetrain list`."),
    "ckpt_root_dir": RecipeKey("str", "checkpoints", "Root directory of all runs (relative to the current directory)."),
    "device": RecipeKey("str or None", None, "'cpu', 'cuda', 'cuda:1', ...; CUDA when available if None."),
    "imports": RecipeKey(
        "list of str",
        [],
        "Modules to import before names are resolved (they register models, data sets, schedulers): "
        "'package.module', or a .py file relative to the recipe.",
    ),
    "defaults": RecipeKey("list of str", [], "YAML files merged below this recipe, relative to it (presets)."),
    "model": RecipeKey("mapping", REQUIRED, "The network: {name, params}."),
    "model.name": RecipeKey("str", REQUIRED, "A registered model (@register_model) or 'package.module:Class'."),
    "model.params": RecipeKey("mapping", {}, "Keyword arguments of the model."),
    "dataset": RecipeKey("mapping", REQUIRED, "The data: {name, params}."),
    "dataset.name": RecipeKey(
        "str",
        REQUIRED,
        "A registered data set (@register_dataset) or 'package.module:function' returning (train, valid).",
    ),
    "dataset.params": RecipeKey("mapping", {}, "Keyword arguments of the data set function."),
    "dataloader": RecipeKey("mapping", REQUIRED, "How batches are drawn."),
    "dataloader.batch_size": RecipeKey("int", REQUIRED, "Samples per training batch (per process under torchrun)."),
    "dataloader.valid_batch_size": RecipeKey("int or None", None, "Samples per validation batch; batch_size if None."),
    "dataloader.shuffle": RecipeKey(
        "bool", True, "Shuffle the training set every epoch (seeded by training_hyperparams.seed)."
    ),
    "dataloader.drop_last": RecipeKey("bool", False, "Drop the last, incomplete training batch."),
    "dataloader.num_workers": RecipeKey("int", 0, "DataLoader worker processes."),
    "training_hyperparams": RecipeKey(
        "mapping", REQUIRED, "The training params of Trainer.train (docs/training_loop.md#training-params)."
    ),
}
"""Every recipe key, top-level and in sections (dotted). The only place they are written."""

_CHECKS: dict[str, Callable[[Any], bool]] = {
    "str": lambda value: isinstance(value, str) and value != "",
    "str or None": lambda value: value is None or isinstance(value, str),
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "int or None": lambda value: value is None or (isinstance(value, int) and not isinstance(value, bool)),
    "bool": lambda value: isinstance(value, bool),
    "mapping": lambda value: isinstance(value, Mapping),
    "list of str": lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
}
_MINIMUMS = {"dataloader.batch_size": 1, "dataloader.valid_batch_size": 1, "dataloader.num_workers": 0}
_SECTIONS = sorted({key.split(".")[0] for key in RECIPE_KEYS if "." in key})
_REPLACED_WHEN_RENAMED = ("model", "dataset")


@dataclass
class Recipe:
    """A loaded recipe: resolved plain data (defaults merged, overrides applied, interpolations
    resolved, section defaults filled in), where it came from and the directory its relative
    paths start from."""

    config: dict[str, Any]
    source: str
    base_dir: Path
    overrides: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"recipe {self.source}"

    def to_yaml(self) -> str:
        """The resolved recipe as YAML: rerunnable as it is (``phasetrain train recipe.yaml``)."""
        from omegaconf import OmegaConf

        return OmegaConf.to_yaml(OmegaConf.create(self.config))


def find_recipe(recipe: str | os.PathLike) -> Path:
    """The file of a recipe path, or of a shipped recipe named with or without ``.yaml``.

    Raises:
        FileNotFoundError: neither a file nor a shipped recipe; lists the shipped ones.
    """
    path = Path(recipe)
    if path.is_file():
        return path.resolve()
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if str(recipe) in (name, f"{name}.yaml") and (RECIPES_DIR / f"{name}.yaml").is_file():
        return RECIPES_DIR / f"{name}.yaml"
    shipped = shipped_recipes()
    raise FileNotFoundError(
        f"recipe {str(recipe)!r}: no such file and no shipped recipe of that name. "
        f"Shipped recipes: {', '.join(shipped)}.{did_you_mean(name, shipped)}"
    )


def read_yaml(path: Path, where: str) -> dict[str, Any]:
    """A YAML file as plain data, interpolations left unresolved.

    Raises:
        ValueError: not valid YAML, or not a mapping at the top.
    """
    from omegaconf import OmegaConf

    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as error:
        raise ValueError(f"{where}: cannot read {str(path)!r} as YAML: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: {str(path)!r} must hold a mapping of recipe keys, got {type(data).__name__}.")
    return data


def load_recipe(recipe: Any, overrides: list[str] | None = None) -> Recipe:
    """Load, merge, override, resolve and validate a recipe; import its ``imports``.

    Args:
        recipe: a shipped recipe name, a path, a dict, a DictConfig, or a Recipe (reloaded from its
            config, with ``overrides`` on top).
        overrides: dotted ``key=value`` strings ("training_hyperparams.max_epochs=3").

    Raises:
        FileNotFoundError: the recipe or a defaults file does not exist.
        ValueError: unknown or missing keys, bad YAML or overrides, unresolved interpolations.
        TypeError: a value of the wrong type.
    """
    overrides = list(overrides or [])
    chain: tuple[Path, ...] = ()
    if isinstance(recipe, Recipe):
        data, source, base_dir = copy.deepcopy(recipe.config), recipe.source, recipe.base_dir
        overrides = recipe.overrides + overrides
    elif isinstance(recipe, (str, os.PathLike)):
        path = find_recipe(recipe)
        source = repr(path.stem) if path.parent == RECIPES_DIR else repr(str(path))
        data, base_dir, chain = read_yaml(path, f"recipe {source}"), path.parent, (path,)
    else:
        data, source, base_dir = _from_mapping(recipe), "(from a mapping)", Path.cwd()
    where = f"recipe {source}"
    data = _with_defaults(data, base_dir, where, chain)
    data = _merge(data, _overrides_layer(overrides, where))
    config = _resolve(data, where)
    validate_recipe(config, where)
    loaded = Recipe(config=_fill_defaults(config), source=source, base_dir=base_dir, overrides=overrides)
    import_recipe_modules(loaded)
    return loaded


def _from_mapping(recipe: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(recipe):
        return OmegaConf.to_container(recipe, resolve=False)
    if isinstance(recipe, Mapping):
        return copy.deepcopy(dict(recipe))
    raise TypeError(
        f"recipe: expected a shipped recipe name, a path, a dict or a DictConfig, got {type(recipe).__name__} {recipe!r}."
    )


def _with_defaults(data: dict[str, Any], base_dir: Path, where: str, chain: tuple[Path, ...]) -> dict[str, Any]:
    """``data`` merged over its ``defaults`` files (recursively), without the ``defaults`` key."""
    defaults = data.pop("defaults", None) or []
    if not _CHECKS["list of str"](defaults):
        raise TypeError(f"{where}: key 'defaults' must be a list of YAML file paths, got {defaults!r}.")
    merged: dict[str, Any] = {}
    for entry in defaults:
        path = (base_dir / entry).resolve()
        if not path.is_file() and path.suffix != ".yaml" and path.with_name(path.name + ".yaml").is_file():
            path = path.with_name(path.name + ".yaml")
        if not path.is_file():
            raise FileNotFoundError(
                f"{where}: defaults entry {entry!r}: no file {str(path)!r} (paths are relative to the recipe)."
            )
        if path in chain:
            cycle = " -> ".join(str(item) for item in (*chain, path))
            raise ValueError(f"{where}: defaults entry {entry!r} includes itself: {cycle}.")
        preset = _with_defaults(read_yaml(path, where), path.parent, where, (*chain, path))
        merged = _merge(merged, preset)
    return _merge(merged, data)


def _overrides_layer(overrides: list[str], where: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    top_level = {key for key in RECIPE_KEYS if "." not in key}
    for override in overrides:
        if not isinstance(override, str) or "=" not in override or override.startswith("="):
            raise ValueError(
                f"{where}: override {override!r} is not 'key=value' (for example training_hyperparams.max_epochs=3)."
            )
        key = override.split("=", 1)[0].split(".")[0]
        if key not in top_level:
            raise ValueError(
                f"{where}: override {override!r}: unknown key {key!r}.{did_you_mean(key, top_level)} "
                f"Known keys: {', '.join(sorted(top_level))}."
            )
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(overrides), resolve=False)
    except Exception as error:
        raise ValueError(f"{where}: cannot parse overrides {overrides}: {error}") from None


def _merge(lower: dict[str, Any], upper: dict[str, Any]) -> dict[str, Any]:
    """``upper`` over ``lower``: mappings merge recursively, other values replace (see the module doc)."""
    lower = copy.deepcopy(lower)
    for section in _REPLACED_WHEN_RENAMED:
        below, above = lower.get(section), upper.get(section)
        if (
            isinstance(below, dict)
            and isinstance(above, dict)
            and "name" in above
            and above["name"] != below.get("name")
        ):
            below.pop("params", None)
    below, above = lower.get("training_hyperparams"), upper.get("training_hyperparams")
    if isinstance(below, dict) and isinstance(above, dict) and "lr_mode" in above:
        old, new = below.get("lr_mode"), above["lr_mode"]
        if not (isinstance(old, dict) and isinstance(new, dict) and old.keys() == new.keys()):
            below.pop("lr_mode", None)
    return _deep_merge(lower, upper)


def _deep_merge(lower: dict[str, Any], upper: dict[str, Any]) -> dict[str, Any]:
    merged = dict(lower)
    for key, value in upper.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _resolve(data: dict[str, Any], where: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    except Exception as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{where}: cannot resolve an interpolation: {message}.") from None


def validate_recipe(config: dict[str, Any], where: str) -> None:
    """Check every key of a resolved recipe (training_hyperparams keys are the trainer's to check).

    Raises:
        ValueError: an unknown key (with the closest known one) or a missing required key.
        TypeError: a value of the wrong type.
    """
    _check_keys(config, "", where)
    for section in _SECTIONS:
        if isinstance(config.get(section), Mapping):
            _check_keys(config[section], f"{section}.", where)
    for key, minimum in _MINIMUMS.items():
        section, leaf = key.split(".")
        value = config[section].get(leaf)
        if value is not None and value < minimum:
            raise ValueError(f"{where}: key {key!r} must be >= {minimum}, got {value!r}.")


def _check_keys(mapping: Mapping[str, Any], prefix: str, where: str) -> None:
    known = [key[len(prefix) :] for key in RECIPE_KEYS if key.startswith(prefix) and "." not in key[len(prefix) :]]
    for key in mapping:
        if key not in known:
            raise ValueError(
                f"{where}: unknown key {prefix + str(key)!r}.{did_you_mean(str(key), known)} "
                f"Known keys{' of ' + prefix[:-1] if prefix else ''}: {', '.join(known)}."
            )
    for key in known:
        spec = RECIPE_KEYS[prefix + key]
        value = mapping.get(key)
        if value is None:  # absent or null: required keys are missing, optional ones take their default
            if spec.default is REQUIRED:
                raise ValueError(f"{where}: missing required key {prefix + key!r} ({spec.doc}).")
            continue
        if not _CHECKS[spec.types](value):
            raise TypeError(
                f"{where}: key {prefix + key!r} must be {spec.types}, got {type(value).__name__} {value!r}."
            )


def _fill_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """The recipe with every optional key written out (recipe.yaml then documents the run fully)."""
    filled = copy.deepcopy(config)
    for key, spec in RECIPE_KEYS.items():
        if spec.default is REQUIRED or key == "defaults":
            continue
        *parents, leaf = key.split(".")
        target = filled
        for parent in parents:
            target = target[parent]
        if target.get(leaf) is None:
            target[leaf] = copy.deepcopy(spec.default)
    order = [key for key in RECIPE_KEYS if "." not in key]
    return {key: filled[key] for key in sorted(filled, key=order.index)}


def import_recipe_modules(recipe: Recipe) -> None:
    """Import the recipe's ``imports``: module names, or ``.py`` files relative to the recipe.

    Raises:
        ValueError: a module that cannot be imported, or a file name taken by another module.
    """
    for entry in recipe.config.get("imports") or []:
        if entry.endswith(".py"):
            _import_file(recipe.base_dir / entry, entry, recipe.where)
            continue
        try:
            importlib.import_module(entry)
        except ImportError as error:
            raise ValueError(f"{recipe.where}: key 'imports': cannot import module {entry!r}: {error}.") from error


def _import_file(path: Path, entry: str, where: str) -> None:
    path = path.resolve()
    if not path.is_file():
        raise ValueError(
            f"{where}: key 'imports': no file {str(path)!r} (from {entry!r}; paths are relative to the recipe)."
        )
    name = path.stem
    existing = sys.modules.get(name)
    if existing is not None:
        existing_file = getattr(existing, "__file__", None)
        if existing_file and Path(existing_file).resolve() == path:
            return
        raise ValueError(
            f"{where}: key 'imports': {entry!r} would be imported as module {name!r}, but that name is taken by "
            f"{existing_file or existing!r}. Rename the file."
        )
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
