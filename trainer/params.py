"""Training params: the defaults (the one place they are written), resolution and validation."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from registry import did_you_mean
from trainer.averaging_params import check_averaging_params
from trainer.run_names import NAME_RULE, is_path_component

REQUIRED = object()
"""Marks a param without a default."""

RESUME_SCHEDULE_POLICIES = ("warn", "error", "continue")
NONFINITE_LOSS_POLICIES = ("raise", "skip")


@dataclass(frozen=True)
class Param:
    """One training param: its default, the types it accepts, a rule on its value and its doc."""

    default: Any
    types: str
    doc: str
    check: Callable[[Any], bool] | None = None
    rule: str = ""
    choices: tuple[str, ...] = ()
    """The valid values when they are a few names (the error then adds the closest one)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(_is_int(item) for item in value)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


_TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "int": _is_int,
    "int or None": _optional(_is_int),
    "number": _is_number,
    "number or None": _optional(_is_number),
    "bool": lambda value: isinstance(value, bool),
    "bool or None": _optional(lambda value: isinstance(value, bool)),
    "str": lambda value: isinstance(value, str),
    "str or None": _optional(lambda value: isinstance(value, str)),
    "list of int": _is_int_list,
    "list of int or None": _optional(_is_int_list),
    "mapping or None": _optional(lambda value: isinstance(value, Mapping)),
    "list": lambda value: isinstance(value, (list, tuple)),
    "mapping": lambda value: isinstance(value, Mapping),
    "any": lambda value: True,
}

TRAINING_PARAMS: dict[str, Param] = {
    "max_epochs": Param(REQUIRED, "int", "Epochs to train.", lambda v: v >= 1, "must be >= 1"),
    "initial_lr": Param(
        None,
        "any",
        "Base LR: a number, or {parameter-name prefix: lr, 'default': lr} for named param groups. "
        "Required unless `optimizer` is an optimizer instance.",
    ),
    "optimizer": Param("SGD", "any", "Registered optimizer name, a torch.optim class, or an instance."),
    "optimizer_params": Param({}, "mapping", "Keyword arguments of the optimizer (momentum, weight_decay, ...)."),
    "zero_weight_decay_on_bias_and_bn": Param(
        False, "bool", "Put biases and normalization weights in groups with weight_decay 0."
    ),
    "loss": Param(
        REQUIRED, "any", "Loss: registered name (torch.nn losses by class name), {name: params}, or an nn.Module."
    ),
    "criterion_params": Param({}, "mapping", "Keyword arguments of the loss when `loss` is a name."),
    "train_metrics_list": Param(
        [], "list", "torchmetrics Metrics, names, or {name: params} computed on training batches."
    ),
    "valid_metrics_list": Param([], "list", "The same for validation (and test) batches."),
    "metric_to_watch": Param(
        "loss", "str", "Validation metric that picks the best checkpoint ('loss' or a metric name)."
    ),
    "greater_metric_to_watch_is_better": Param(
        None,
        "bool or None",
        "Direction of metric_to_watch; when None: False for 'loss', else the metric's torchmetrics "
        "higher_is_better (an error if the metric does not declare it).",
    ),
    "phase_callbacks": Param([], "list", "User callbacks (Callback instances), run after the LR callbacks."),
    "batch_accumulate": Param(1, "int", "Micro-batches per optimizer step.", lambda v: v >= 1, "must be >= 1"),
    "clip_grad_norm": Param(
        None,
        "number or None",
        "Clip the total gradient norm to this value.",
        lambda v: v is None or v > 0,
        "must be > 0",
    ),
    "mixed_precision": Param(False, "bool", "Autocast (float16 + GradScaler on CUDA, bfloat16 on CPU)."),
    "max_train_batches": Param(
        None,
        "int or None",
        "Use at most this many batches of each train epoch.",
        lambda v: v is None or v >= 1,
        "must be >= 1 (0 would leave train_loader without batches)",
    ),
    "max_valid_batches": Param(
        None,
        "int or None",
        "Use at most this many batches of each validation.",
        lambda v: v is None or v >= 1,
        "must be >= 1",
    ),
    "run_validation_freq": Param(
        1, "int", "Validate every this many epochs (and always after the last).", lambda v: v >= 1, "must be >= 1"
    ),
    "save_model": Param(True, "bool", "Write checkpoints."),
    "save_ckpt_epoch_list": Param([], "list of int", "Epoch indices (from 0) that also get ckpt_epoch_{N}.pth."),
    "ckpt_name": Param("ckpt_latest.pth", "str", "File name of the latest checkpoint.", is_path_component, NAME_RULE),
    "ckpt_best_name": Param("ckpt_best.pth", "str", "File name of the best checkpoint.", is_path_component, NAME_RULE),
    "resume": Param(False, "bool", "Continue from ckpt_latest.pth of this experiment."),
    "resume_path": Param(
        None, "str or None", "Continue from this checkpoint file (writes into this experiment's dir)."
    ),
    "resume_strict_load": Param(True, "bool", "Load the net's weights strictly on resume."),
    "resume_schedule": Param(
        "warn",
        "str",
        "On resume, when the schedule rebuilt from the current params gives another LR at the resume step than "
        "the checkpoint holds: 'warn' and run the rebuilt schedule, 'error' and refuse, or 'continue' the "
        "checkpoint's own schedule (built from the params saved in it), holding its final value past its old end.",
        lambda v: v in RESUME_SCHEDULE_POLICIES,
        f"must be one of {', '.join(RESUME_SCHEDULE_POLICIES)}",
        RESUME_SCHEDULE_POLICIES,
    ),
    "nonfinite_loss": Param(
        "raise",
        "str",
        "On a NaN or inf training loss: 'raise' (stop, naming epoch, batch, loss and LR; checkpoints on disk "
        "stay as before that epoch) or 'skip' the optimizer step (reads each loss on the host: one sync per batch).",
        lambda v: v in NONFINITE_LOSS_POLICIES,
        f"must be one of {', '.join(NONFINITE_LOSS_POLICIES)}",
        NONFINITE_LOSS_POLICIES,
    ),
    "max_consecutive_nonfinite_skips": Param(
        10,
        "int",
        "With nonfinite_loss 'skip': stop after this many skipped optimizer steps in a row.",
        lambda v: v >= 1,
        "must be >= 1",
    ),
    "load_opt_params": Param(True, "bool", "Load the optimizer state on resume."),
    "seed": Param(42, "int or None", "Seed of torch, python and numpy RNGs (None: do not seed)."),
    "silent_mode": Param(False, "bool", "No progress bars and no epoch summaries."),
    "lr_mode": Param(
        None,
        "any",
        "LR schedule: a registered name (StepLRScheduler, CosineLRScheduler, ...) or "
        "{TorchSchedulerName: {kwargs, phase, metric_name}}; None keeps initial_lr constant.",
    ),
    "lr_warmup_epochs": Param(0, "int", "Epochs of LR warmup.", lambda v: v >= 0, "must be >= 0"),
    "lr_warmup_steps": Param(
        0, "int", "Optimizer steps of LR warmup (per-step warmup).", lambda v: v >= 0, "must be >= 0"
    ),
    "lr_cooldown_epochs": Param(
        0, "int", "Last epochs held at the LR reached before them.", lambda v: v >= 0, "must be >= 0"
    ),
    "warmup_initial_lr": Param(None, "any", "LR at the start of warmup (a number or a per-group mapping)."),
    "warmup_mode": Param(
        None,
        "str or None",
        "Registered warmup: LinearEpochLRWarmup (with lr_warmup_epochs) or LinearBatchLRWarmup "
        "(with lr_warmup_steps); inferred when None.",
    ),
    "param_scheduler": Param(
        [],
        "list",
        "MMEngine-style schedules of any param-group key (lr, momentum, weight_decay, ...): a list of segments "
        "{type: CosineAnnealingLR, ...} or {CosineAnnealingLR: {...}} (docs/param_schedules.md).",
    ),
    "log_steps": Param(True, "bool", "Write steps.csv in the run directory: one row per optimizer step (LR, loss)."),
    "tensorboard": Param(
        None, "bool or None", "Write TensorBoard event files (None: when the tensorboard package is installed)."
    ),
    "plots": Param(False, "bool", "Write PNG plots of LR, loss and metrics at the end of training (needs matplotlib)."),
    "shard_loaders": Param(
        True,
        "bool",
        "Under torchrun, rebuild each plain DataLoader (no sampler or batch sampler of its own) with a seeded "
        "DistributedSampler, keeping its other settings (docs/distributed.md).",
    ),
    "snapshot_ensemble": Param(
        False,
        "bool",
        "Save ckpt_snapshot_epoch{N}.pth after every epoch N (from 1) after which the LR schedule restarts, "
        "and after the last epoch (docs/averaging.md).",
    ),
    "snapshot_epochs": Param(
        None,
        "list of int or None",
        "With snapshot_ensemble: exactly these snapshot epochs (from 1) instead of the schedule's restarts.",
    ),
    "swa": Param(
        None,
        "mapping or None",
        "Stochastic weight averaging: {start_epoch (from 0), swa_lr, anneal_epochs, anneal_strategy: cos|linear}; "
        "SWALR owns the LR from start_epoch, ckpt_swa.pth at the end (docs/averaging.md).",
    ),
    "ema": Param(False, "bool", "Keep an EMA of the weights; validation and ckpt_best use it (docs/averaging.md)."),
    "ema_params": Param(
        {"decay": 0.9999, "decay_type": "exp", "beta": 15},
        "mapping",
        "EMA: decay in (0, 1), decay_type constant|threshold|exp, beta (exp's time constant, in updates); "
        "missing keys keep these defaults.",
    ),
}
"""Every training param the trainer knows. The only place defaults are written."""

DEFAULT_TRAINING_PARAMS: dict[str, Any] = {
    name: param.default for name, param in TRAINING_PARAMS.items() if param.default is not REQUIRED
}


class TrainingParams(dict):
    """The resolved training params: a dict whose keys also read as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"training_params has no key {name!r}.{did_you_mean(name, self)}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __deepcopy__(self, memo: dict) -> TrainingParams:
        return TrainingParams(self)


def to_plain_dict(training_params: Any) -> dict[str, Any]:
    """A dict or an OmegaConf config as a plain dict (interpolations resolved)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(training_params):
        return OmegaConf.to_container(training_params, resolve=True)
    if isinstance(training_params, Mapping):
        return dict(training_params)
    raise TypeError(
        f"training_params: expected a dict or an OmegaConf DictConfig, got {type(training_params).__name__}."
    )


def resolve_training_params(
    training_params: Any, extra_known_keys: set[str] | Callable[[dict], set[str]]
) -> TrainingParams:
    """Merge ``training_params`` over the defaults and validate every key.

    Args:
        training_params: the user's dict or OmegaConf config.
        extra_known_keys: keys accepted besides ``TRAINING_PARAMS`` (the named parameters of the
            chosen LR schedule and warmup classes), or a function of the merged dict returning them.

    Raises:
        ValueError: a required key is missing, a key is unknown, or a value breaks its rule.
        TypeError: a value has the wrong type.
    """
    user = to_plain_dict(training_params)
    merged = {**DEFAULT_TRAINING_PARAMS, **user}
    extra = extra_known_keys(merged) if callable(extra_known_keys) else extra_known_keys
    known = set(TRAINING_PARAMS) | set(extra)
    # Unknown keys first: a misspelled required key ('max_epoch') gets its close match, not "missing".
    for name in user:
        if name not in known:
            raise ValueError(
                f"training_params: unknown key {name!r}: it is neither a training param nor a parameter of the "
                f"chosen lr_mode/warmup_mode.{did_you_mean(name, known)} Known keys: {', '.join(sorted(known))}."
            )
    for name, param in TRAINING_PARAMS.items():
        if param.default is REQUIRED and user.get(name) is None:
            raise ValueError(f"training_params: missing required key {name!r} ({param.doc}).")
    for name, param in TRAINING_PARAMS.items():
        value = merged[name]
        if not _TYPE_CHECKS[param.types](value):
            raise TypeError(
                f"training_params: key {name!r} must be {param.types}, got {type(value).__name__} {value!r}."
            )
        if param.check is not None and value is not None and not param.check(value):
            hint = did_you_mean(value, param.choices) if param.choices and isinstance(value, str) else ""
            raise ValueError(f"training_params: key {name!r} {param.rule}, got {value!r}.{hint}")
    if merged["lr_warmup_epochs"] and merged["lr_warmup_steps"]:
        raise ValueError(
            "training_params: set either 'lr_warmup_epochs' or 'lr_warmup_steps', not both "
            f"(got {merged['lr_warmup_epochs']} and {merged['lr_warmup_steps']})."
        )
    _check_param_scheduler_against_lr_keys(merged)
    merged["ema_params"] = {**TRAINING_PARAMS["ema_params"].default, **merged["ema_params"]}
    check_averaging_params(merged)
    return TrainingParams(merged)


def _check_param_scheduler_against_lr_keys(merged: dict[str, Any]) -> None:
    """``lr_mode``, a warmup or a cooldown key together with a param_scheduler entry that moves ``lr``:
    two schedules of the LR; the user picks one.

    Raises:
        ValueError: names both keys.
    """
    from schedulers.param_scheduler_config import parse_entries

    entries = parse_entries(merged.get("param_scheduler"))
    moving_lr = next((entry for entry in entries if entry.key == "lr"), None)
    if moving_lr is None:
        return
    for key in ("lr_mode", "lr_warmup_epochs", "lr_warmup_steps", "warmup_mode", "lr_cooldown_epochs"):
        if merged.get(key):
            raise ValueError(
                f"training_params: key {key!r} ({merged[key]!r}) and key 'param_scheduler' (entry "
                f"{moving_lr.index}, {moving_lr.name}) both schedule the learning rate; pick one: drop {key!r}, or "
                "move the LR schedule out of param_scheduler (param_scheduler may still schedule momentum or "
                "weight_decay next to lr_mode)."
            )


def params_markdown_table() -> str:
    """The training params as a Markdown table (key, default, type, rule, meaning), from ``TRAINING_PARAMS``.

    docs/training_loop.md embeds this table; a test checks that the two agree.
    """
    rows = ["| Key | Default | Type | Meaning |", "|---|---|---|---|"]
    for name, param in TRAINING_PARAMS.items():
        default = "required" if param.default is REQUIRED else f"`{param.default!r}`"
        doc = f"{param.doc} {param.rule[:1].upper()}{param.rule[1:]}." if param.rule else param.doc
        doc = doc.replace("|", "\\|")
        rows.append(f"| `{name}` | {default} | {param.types} | {doc} |")
    return "\n".join(rows) + "\n"
