"""Types and ranges of the arguments of one ``param_scheduler`` entry (MMEngine's rules, plus those it
leaves to a crash mid-run)."""

from __future__ import annotations

import numbers
from typing import Any

from registry import did_you_mean


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number(args: dict, key: str, where: str, rule=None, rule_text: str = "", integer: bool = False) -> None:
    value = args[key]
    if not (_is_int(value) if integer else _is_number(value)):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{where}: {key} must be {kind}, got {type(value).__name__} {value!r}.")
    if rule is not None and not rule(value):
        raise ValueError(f"{where}: {key} {rule_text}, got {value!r}.")


def check_args(shape: str, args: dict[str, Any], where: str) -> None:
    """Types and ranges of one entry's arguments (MMEngine's rules, plus a few it leaves to a crash)."""
    for flag in ("by_epoch", "convert_to_iter_based", "verbose"):
        if not isinstance(args[flag], bool):
            raise TypeError(f"{where}: {flag} must be true or false, got {args[flag]!r}.")
    _number(args, "begin", where, lambda v: v >= 0, "must be >= 0", integer=True)
    if args["end"] is not None:
        _number(args, "end", where, integer=True)
        if args["end"] <= args["begin"]:
            raise ValueError(
                f"{where}: begin must be smaller than end (the segment acts in [begin, end)), "
                f"got begin={args['begin']}, end={args['end']}."
            )
    if args["convert_to_iter_based"] and not args["by_epoch"]:
        raise ValueError(
            f"{where}: convert_to_iter_based converts an epoch segment (by_epoch: true) to optimizer steps; "
            "this segment already counts optimizer steps (by_epoch: false). Drop one of the two."
        )
    unit_checks = {
        "Constant": lambda: _number(args, "factor", where, lambda v: 0 < v <= 1, "must be in (0, 1]"),
        "Linear": lambda: [
            _number(args, "start_factor", where, lambda v: 0 < v <= 1, "must be in (0, 1]"),
            _number(args, "end_factor", where, lambda v: 0 <= v <= 1, "must be in [0, 1]"),
        ],
        "Step": lambda: [
            _number(args, "step_size", where, lambda v: v >= 1, "must be >= 1", integer=True),
            _number(args, "gamma", where),
        ],
        "MultiStep": lambda: [_check_int_list(args, "milestones", where), _number(args, "gamma", where)],
        "Exponential": lambda: _number(args, "gamma", where),
        "CosineAnnealing": lambda: _check_cosine(args, where),
        "Poly": lambda: [_number(args, "eta_min", where), _number(args, "power", where)],
        "OneCycle": lambda: _check_one_cycle(args, where),
        "CosineRestart": lambda: _check_restart(args, where),
        "ReduceOnPlateau": lambda: _check_plateau(args, where),
    }
    unit_checks[shape]()


def _check_int_list(args: dict, key: str, where: str) -> None:
    value = args[key]
    if not isinstance(value, (list, tuple)) or not value or not all(_is_int(item) and item >= 0 for item in value):
        raise TypeError(f"{where}: {key} must be a non-empty list of ints >= 0, got {value!r}.")


def _check_cosine(args: dict, where: str) -> None:
    if args["eta_min"] is not None and args["eta_min_ratio"] is not None:
        raise ValueError(
            f"{where}: give eta_min ({args['eta_min']!r}) or eta_min_ratio ({args['eta_min_ratio']!r}), not both."
        )
    if args["eta_min"] is None and args["eta_min_ratio"] is None:
        args["eta_min"] = 0.0
    if args["T_max"] is not None:
        _number(args, "T_max", where, lambda v: v >= 1, "must be >= 1", integer=True)


def _check_one_cycle(args: dict, where: str) -> None:
    eta_max = args["eta_max"]
    if isinstance(eta_max, (list, tuple)):
        if not all(_is_number(value) and value > 0 for value in eta_max):
            raise ValueError(f"{where}: eta_max must be a number > 0 or a list of them, got {eta_max!r}.")
    else:
        _number(args, "eta_max", where, lambda v: v > 0, "must be > 0")
    if args["total_steps"] is not None:
        _number(args, "total_steps", where, lambda v: v >= 1, "must be >= 1", integer=True)
    _number(args, "pct_start", where, lambda v: 0 <= v <= 1, "must be in [0, 1]")
    if args["anneal_strategy"] not in ("cos", "linear"):
        raise ValueError(
            f"{where}: anneal_strategy must be 'cos' or 'linear', got {args['anneal_strategy']!r}."
            f"{did_you_mean(str(args['anneal_strategy']), ['cos', 'linear'])}"
        )
    for name in ("div_factor", "final_div_factor"):
        _number(args, name, where, lambda v: v > 0, "must be > 0")


def _check_restart(args: dict, where: str) -> None:
    _check_int_list(args, "periods", where)
    if any(period < 1 for period in args["periods"]):
        raise ValueError(f"{where}: periods must be >= 1, got {args['periods']!r}.")
    weights = args["restart_weights"]
    if not isinstance(weights, (list, tuple)) or len(weights) != len(args["periods"]):
        raise ValueError(
            f"{where}: restart_weights must be a list with one weight per period ({len(args['periods'])}), "
            f"got {weights!r}."
        )
    if (args["eta_min"] is None) == (args["eta_min_ratio"] is None):
        raise ValueError(f"{where}: give exactly one of eta_min and eta_min_ratio (MMEngine's rule).")


def _check_plateau(args: dict, where: str) -> None:
    if not isinstance(args["monitor"], str):
        raise TypeError(f"{where}: monitor must be a metric name, got {args['monitor']!r}.")
    for name, choices in (("rule", ("less", "greater")), ("threshold_rule", ("rel", "abs"))):
        if args[name] not in choices:
            raise ValueError(
                f"{where}: {name} must be one of {list(choices)}, got {args[name]!r}."
                f"{did_you_mean(str(args[name]), choices)}"
            )
    _number(args, "factor", where, lambda v: 0 <= v < 1, "must be in [0, 1)")
    _number(args, "patience", where, lambda v: v >= 0, "must be >= 0", integer=True)
    _number(args, "cooldown", where, lambda v: v >= 0, "must be >= 0", integer=True)
    _number(args, "threshold", where, lambda v: v >= 0, "must be >= 0")
    _number(args, "eps", where, lambda v: v >= 0, "must be >= 0")
    if not args["by_epoch"] or args["convert_to_iter_based"]:
        raise ValueError(f"{where}: a plateau schedule steps after each validation: by_epoch must be true.")
