"""Validation of the averaging training params: snapshot_ensemble/snapshot_epochs, swa, ema/ema_params.

Called by ``trainer.params.resolve_training_params`` on the merged params, before the first batch.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from callbacks.ema import EMA_DECAY_TYPES
from callbacks.swa import SWA_ANNEAL_STRATEGIES
from registry import did_you_mean, unknown_name_message

SWA_KEYS = ("start_epoch", "swa_lr", "anneal_epochs", "anneal_strategy")
EMA_KEYS = ("decay", "decay_type", "beta")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_keys(section: Mapping[str, Any], name: str, valid: tuple[str, ...]) -> None:
    for key in section:
        if key not in valid:
            raise ValueError(
                f"training_params: key '{name}': unknown key {key!r}; valid keys: {', '.join(valid)}."
                f"{did_you_mean(str(key), valid)}"
            )


def _require(ok: bool, error: type[Exception], message: str) -> None:
    if not ok:
        raise error(f"training_params: {message}")


def check_averaging_params(params: dict[str, Any]) -> None:
    """Validate snapshot_epochs, swa and ema_params against each other and max_epochs.

    Raises:
        ValueError: an unknown key, a value outside its range (each message names the key, the value,
            the rule and the valid choices with a close match).
        TypeError: a value of the wrong type.
    """
    max_epochs = params["max_epochs"]
    epochs = params.get("snapshot_epochs")
    if epochs is not None:
        for epoch in epochs:
            _require(
                1 <= epoch <= max_epochs,
                ValueError,
                f"key 'snapshot_epochs': epoch {epoch!r} is outside 1..max_epochs={max_epochs} "
                f"(snapshot epochs are counted from 1), got {list(epochs)!r}.",
            )
    swa = params.get("swa")
    if swa is not None:
        _check_swa(swa, max_epochs)
    _check_ema_params(params.get("ema_params") or {})


def _check_swa(swa: Mapping[str, Any], max_epochs: int) -> None:
    _check_keys(swa, "swa", SWA_KEYS)
    for key in ("start_epoch", "swa_lr"):
        _require(key in swa, ValueError, f"key 'swa': needs {key!r} (keys: {', '.join(SWA_KEYS)}), got {dict(swa)!r}.")
    start = swa["start_epoch"]
    _require(_is_int(start), TypeError, f"key 'swa.start_epoch' must be an int, got {type(start).__name__} {start!r}.")
    _require(
        0 <= start < max_epochs,
        ValueError,
        f"key 'swa.start_epoch' must be in 0..max_epochs-1 = 0..{max_epochs - 1} (epochs counted from 0), "
        f"got {start!r}.",
    )
    lr = swa["swa_lr"]
    _require(_is_number(lr), TypeError, f"key 'swa.swa_lr' must be a number, got {type(lr).__name__} {lr!r}.")
    _require(lr > 0, ValueError, f"key 'swa.swa_lr' must be > 0, got {lr!r}.")
    anneal = swa.get("anneal_epochs")
    if anneal is not None:
        _require(_is_int(anneal), TypeError, f"key 'swa.anneal_epochs' must be an int, got {anneal!r}.")
        _require(anneal >= 0, ValueError, f"key 'swa.anneal_epochs' must be >= 0, got {anneal!r}.")
    strategy = swa.get("anneal_strategy")
    if strategy is not None and strategy not in SWA_ANNEAL_STRATEGIES:
        raise ValueError(
            unknown_name_message("training_params: key 'swa.anneal_strategy'", strategy, SWA_ANNEAL_STRATEGIES)
        )


def _check_ema_params(ema_params: Mapping[str, Any]) -> None:
    _check_keys(ema_params, "ema_params", EMA_KEYS)
    decay = ema_params.get("decay")
    _require(_is_number(decay), TypeError, f"key 'ema_params.decay' must be a number, got {decay!r}.")
    _require(0 < decay < 1, ValueError, f"key 'ema_params.decay' must be in (0, 1) (exclusive), got {decay!r}.")
    decay_type = ema_params.get("decay_type")
    if decay_type not in EMA_DECAY_TYPES:
        raise ValueError(
            unknown_name_message("training_params: key 'ema_params.decay_type'", decay_type, EMA_DECAY_TYPES)
        )
    beta = ema_params.get("beta")
    _require(_is_number(beta), TypeError, f"key 'ema_params.beta' must be a number, got {beta!r}.")
    _require(beta > 0, ValueError, f"key 'ema_params.beta' must be > 0, got {beta!r}.")


def merged_ema_params(params: Mapping[str, Any], default: Mapping[str, Any]) -> dict[str, Any]:
    """``ema_params`` over its default (a partial mapping such as ``{decay: 0.999}`` keeps the other keys)."""
    return {**default, **dict(params.get("ema_params") or {})}
