"""Parse and check ``training_params["param_scheduler"]``: MMEngine's segment list, in either form.

An entry is MMEngine's ``{type: CosineAnnealingLR, T_max: 12, by_epoch: true}`` or the mapping form
``{CosineAnnealingLR: {T_max: 12, by_epoch: true}}``. ``parse_entries`` checks names and arguments
(no optimizer needed: training params are validated with it); ``resolve_segments`` turns the entries
into ``Segment``s on the run's clock (default ``end``, ``convert_to_iter_based``, ``T_max``, ...).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from registry import did_you_mean, unknown_name_message
from schedulers import param_schedule_math
from schedulers.param_scheduler_checks import check_args

WHERE = "training_params: key 'param_scheduler'"

COMMON_ARGS = {"begin": 0, "end": None, "by_epoch": True, "convert_to_iter_based": False, "verbose": False}
"""Arguments every class takes (``verbose`` is accepted for pasted configs and has no effect)."""

SHAPE_ARGS: dict[str, dict[str, Any]] = {
    "Constant": {"factor": 1.0 / 3},
    "Linear": {"start_factor": 1.0 / 3, "end_factor": 1.0},
    "Step": {"step_size": None, "gamma": 0.1},
    "MultiStep": {"milestones": None, "gamma": 0.1},
    "Exponential": {"gamma": None},
    "CosineAnnealing": {"T_max": None, "eta_min": None, "eta_min_ratio": None},
    "Poly": {"eta_min": 0.0, "power": 1.0},
    "OneCycle": {
        "eta_max": None,
        "total_steps": None,
        "pct_start": 0.3,
        "anneal_strategy": "cos",
        "div_factor": 25.0,
        "final_div_factor": 1e4,
        "three_phase": False,
    },
    "CosineRestart": {"periods": None, "restart_weights": (1,), "eta_min": None, "eta_min_ratio": None},
    "ReduceOnPlateau": {
        "monitor": "loss",
        "rule": "less",
        "factor": 0.1,
        "patience": 10,
        "threshold": 1e-4,
        "threshold_rule": "rel",
        "cooldown": 0,
        "min_value": 0.0,
        "eps": 1e-8,
    },
}
"""Each shape's own arguments and MMEngine's defaults (None: required, or "not given")."""

REQUIRED = {"Step": ("step_size",), "MultiStep": ("milestones",), "Exponential": ("gamma",), "OneCycle": ("eta_max",)}
REQUIRED["CosineRestart"] = ("periods",)

EPOCH_COUNTS = {"Step": "step_size", "MultiStep": "milestones", "CosineAnnealing": "T_max"}
EPOCH_COUNTS.update({"OneCycle": "total_steps", "CosineRestart": "periods"})
"""The argument of each shape that counts units, multiplied by S under convert_to_iter_based."""


def _class_table() -> dict[str, tuple[str, str | None]]:
    """Class name -> (shape, scheduled key; None for the generic classes that take param_name)."""
    table: dict[str, tuple[str, str | None]] = {}
    for shape in SHAPE_ARGS:
        table[f"{shape}LR"] = (shape, "lr")
        table[f"{shape}ParamScheduler"] = (shape, None)
        if shape != "OneCycle":
            table[f"{shape}Momentum"] = (shape, "momentum")
    return table


CLASSES = _class_table()


@dataclass(frozen=True)
class Entry:
    """One checked ``param_scheduler`` entry, before it meets the run's clock.

    Attributes:
        index: its position in the list.
        name: the class name (``CosineAnnealingLR``).
        shape: the schedule shape (``CosineAnnealing``).
        key: the param-group key it moves (``lr``, ``momentum``, ``weight_decay``, ...).
        args: every argument, defaults filled in.
    """

    index: int
    name: str
    shape: str
    key: str
    args: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{WHERE}[{self.index}] {self.name}"


@dataclass(frozen=True)
class Segment:
    """An entry on the run's clock: units resolved, ``end`` filled in, arguments converted.

    Attributes:
        entry: the entry it comes from.
        by_epoch: True when ``begin``/``end`` count epochs (the value changes at epoch starts),
            False when they count optimizer steps.
        begin, end: the segment acts at positions begin <= p < end of its unit.
        args: the shape's arguments in that unit, with derived ones (total_iters, ...).
    """

    entry: Entry
    by_epoch: bool
    begin: int
    end: int
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> str:
        return self.entry.shape

    @property
    def key(self) -> str:
        return self.entry.key


def split_entry(raw: Any, index: int) -> tuple[str, dict[str, Any]]:
    """(class name, arguments) of an entry in either form.

    Raises:
        TypeError: the entry is neither ``{type: Name, ...}`` nor ``{Name: {...}}``.
    """
    where = f"{WHERE}[{index}]"
    if isinstance(raw, Mapping) and "type" in raw:
        args = {key: value for key, value in raw.items() if key != "type"}
        return raw["type"], args
    if isinstance(raw, Mapping) and len(raw) == 1:
        ((name, args),) = raw.items()
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise TypeError(
                f"{where}: the arguments of {name!r} must be a mapping, got {type(args).__name__} {args!r}."
            )
        return name, dict(args)
    raise TypeError(
        f"{where}: each entry must be MMEngine's {{type: ClassName, ...}} or {{ClassName: {{...}}}}, "
        f"got {type(raw).__name__} {raw!r}."
    )


def parse_entries(raw_list: Any) -> list[Entry]:
    """Check class names and arguments of every entry.

    Raises:
        TypeError: not a list, or an entry of the wrong form or an argument of the wrong type.
        ValueError: an unknown class or argument (with the accepted ones and a close match), a
            missing required argument, or a value outside its range.
    """
    if raw_list is None:
        return []
    if not isinstance(raw_list, (list, tuple)):
        raise TypeError(f"{WHERE}: must be a list of segments, got {type(raw_list).__name__} {raw_list!r}.")
    return [_parse_entry(raw, index) for index, raw in enumerate(raw_list)]


def _parse_entry(raw: Any, index: int) -> Entry:
    name, given = split_entry(raw, index)
    if not isinstance(name, str) or name not in CLASSES:
        raise ValueError(unknown_name_message(f"{WHERE}[{index}]", name, CLASSES))
    shape, key = CLASSES[name]
    accepted = {**COMMON_ARGS, **SHAPE_ARGS[shape]}
    if key is None:
        accepted["param_name"] = None
    where = f"{WHERE}[{index}] {name}"
    for arg in given:
        if arg not in accepted:
            raise ValueError(
                f"{where}: unknown argument {arg!r}; {name} accepts {', '.join(sorted(accepted))}."
                f"{did_you_mean(str(arg), accepted)}"
            )
    required = REQUIRED.get(shape, ()) + (("param_name",) if key is None else ())
    for arg in required:
        if given.get(arg) is None:
            raise ValueError(f"{where}: needs the argument {arg!r}.")
    args = {**accepted, **given}
    if key is None:
        key = args.pop("param_name")
        if not isinstance(key, str):
            raise TypeError(f"{where}: param_name must be a string, got {type(key).__name__} {key!r}.")
    if shape == "OneCycle" and key != "lr":
        raise ValueError(f"{where}: OneCycle schedules only 'lr' (as in MMEngine), got param_name {key!r}.")
    check_args(shape, args, where)
    return Entry(index=index, name=name, shape=shape, key=key, args=args)


def scheduled_keys(raw_list: Any) -> list[str]:
    """The param-group keys the entries move, in first-appearance order (checks the entries)."""
    return list(dict.fromkeys(entry.key for entry in parse_entries(raw_list)))


def resolve_segments(entries: list[Entry], steps_per_epoch: int, max_epochs: int) -> list[Segment]:
    """Put each entry on the run's clock, as MMEngine's runner builds it.

    ``end`` defaults to the end of training in the entry's unit; ``convert_to_iter_based``
    multiplies begin, end and the counting argument by S (``steps_per_epoch``). A segment that
    starts after training ends warns.

    Raises:
        ValueError: begin >= end after defaults, a count that does not fit (OneCycle total_steps).
    """
    total_steps = steps_per_epoch * max_epochs
    segments = []
    for entry in entries:
        args = dict(entry.args)
        by_epoch = args.pop("by_epoch")
        convert = args.pop("convert_to_iter_based")
        begin, end = args.pop("begin"), args.pop("end")
        args.pop("verbose")
        if end is None:
            end = max_epochs if by_epoch else total_steps
        if convert:
            begin, end, by_epoch = int(begin * steps_per_epoch), int(end * steps_per_epoch), False
            counted = EPOCH_COUNTS.get(entry.shape)
            if counted and args[counted] is not None:
                value = args[counted]
                args[counted] = (
                    [v * steps_per_epoch for v in value]
                    if isinstance(value, (list, tuple))
                    else (value * steps_per_epoch)
                )
        if end <= begin:
            raise ValueError(
                f"{entry.where}: begin must be smaller than end (the segment acts in [begin, end)), got begin={begin}, "
                f"end={end} ({'epochs' if by_epoch else 'optimizer steps'}; end defaults to the end of training)."
            )
        units = max_epochs if by_epoch else total_steps
        if begin >= units:
            warnings.warn(
                f"{entry.where}: begins at {'epoch' if by_epoch else 'optimizer step'} {begin}, but training ends "
                f"after {units} {'epochs' if by_epoch else 'optimizer steps'}: it never acts.",
                UserWarning,
                stacklevel=3,
            )
        _derive(entry, args, begin, end, units)
        segments.append(Segment(entry=entry, by_epoch=by_epoch, begin=begin, end=end, args=args))
    return segments


def _derive(entry: Entry, args: dict[str, Any], begin: int, end: int, units: int) -> None:
    """Arguments MMEngine derives in its constructors (total_iters, T_max default, phases, ...)."""
    shape = entry.shape
    if shape in ("Constant", "Linear", "Poly"):
        args["total_iters"] = end - begin - 1
    elif shape == "MultiStep":
        args["milestone_counts"] = dict(Counter(args["milestones"]))
    elif shape == "CosineAnnealing":
        args["T_max"] = args["T_max"] or (end - begin)
    elif shape == "CosineRestart":
        periods = list(args["periods"])
        args["cumulative_periods"] = [sum(periods[: i + 1]) for i in range(len(periods))]
    elif shape == "OneCycle":
        total = args["total_steps"] if args["total_steps"] is not None else end - begin
        last = min(end, units) - begin - 1  # the last position the segment reaches in this run
        if last > total:
            raise ValueError(
                f"{entry.where}: total_steps={total} is too small: the segment (begin={begin}, end={end}) reaches "
                f"position {last} in this run, and MMEngine fails past position {total} ('Tried to step "
                f"{total + 2} times'). Give total_steps >= {last} or leave it unset."
            )
        args["total_steps"] = total
        args["phases"] = param_schedule_math.one_cycle_phases(total, float(args["pct_start"]), args["three_phase"])
