"""The MMEngine-style parameter schedules as pure functions: one step of each segment's arithmetic.

MMEngine's schedulers are *chained*: each step of a segment maps the parameter's current value to the
next one, and segments that overlap compose in list order. Each function below is one such step,
a function of the segment's arguments, its position ``t`` in its own unit (0 at ``begin``), the
current value ``value`` and the group's base value ``base`` (the value configured in the optimizer).
The expressions are written exactly as MMEngine 0.10.7 writes them, so the floats are equal.

Closed forms (what a lone segment gives at position t, from ``v0`` at its begin; docs/param_schedules.md):

- Constant:  ``v0 * factor`` for t < end - begin - 1, then ``v0``.
- Linear:    ``v0 * (start_factor + (end_factor - start_factor) * t / (end - begin - 1))``.
- Step:      ``v0 * gamma ** (t // step_size)``.  MultiStep: ``v0 * gamma ** count(m <= t)``.
- Exponential: ``v0 * gamma ** t``.
- CosineAnnealing: ``eta_min + (v0 - eta_min) * (1 + cos(pi * t / T_max)) / 2``.
- Poly:      ``eta_min + (v0 - eta_min) * (1 - t / (end - begin)) ** power``.
- OneCycle, CosineRestart (at the start of each period): absolute values, not chained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def constant_step(args: Mapping[str, Any], t: int, value: float, base: float) -> float:
    """ConstantLR: times ``factor`` at t = 0, back (times 1/factor) at t = end - begin - 1."""
    if t == 0:
        return value * args["factor"]
    if t != args["total_iters"]:
        return value
    return value * (1.0 / args["factor"])


def linear_step(args: Mapping[str, Any], t: int, value: float, base: float) -> float:
    """LinearLR: times ``start_factor`` at t = 0, then the factor moves linearly to ``end_factor``."""
    start, end = args["start_factor"], args["end_factor"]
    if t == 0:
        return value * start
    return value * (1.0 + (end - start) / (args["total_iters"] * start + (t - 1) * (end - start)))


def step_step(args: Mapping[str, Any], t: int, value: float, base: float) -> float:
    """StepLR: times ``gamma`` every ``step_size`` positions."""
    if t == 0 or t % args["step_size"] != 0:
        return value
    return value * args["gamma"]


def multistep_step(args: Mapping[str, Any], t: int, value: float, base: float) -> float:
    """MultiStepLR: times ``gamma ** (how often t is listed)`` at each milestone."""
    count = args["milestone_counts"].get(t)
    if count is None:
        return value
    return value * args["gamma"] ** count


def exponential_step(args: Mapping[str, Any], t: int, value: float, base: float) -> float:
    """ExponentialLR: times ``gamma`` at every position after the first."""
    if t == 0:
        return value
    return value * args["gamma"]


def _eta_min(args: Mapping[str, Any], base: float) -> float:
    ratio = args.get("eta_min_ratio")
    return args["eta_min"] if ratio is None else base * ratio


def cosine_annealing_step(args: Mapping[str, Any], t: int, value: float, base: float) -> float:
    """CosineAnnealingLR in its recursive (chainable) form, as in MMEngine and torch."""
    if t == 0:
        return value
    t_max = args["T_max"]
    eta_min = _eta_min(args, base)
    if (t - 1 - t_max) % (2 * t_max) == 0:
        return value + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
    return (1 + math.cos(math.pi * t / t_max)) / (1 + math.cos(math.pi * (t - 1) / t_max)) * (value - eta_min) + eta_min


def poly_step(args: Mapping[str, Any], t: int, value: float, base: float) -> float:
    """PolyLR: ``(value - eta_min) * (1 - 1 / (total_iters - t + 1)) ** power + eta_min``."""
    if t == 0:
        return value
    eta_min = args["eta_min"]
    return (value - eta_min) * (1 - 1 / (args["total_iters"] - t + 1)) ** args["power"] + eta_min


def one_cycle_value(args: Mapping[str, Any], t: int, value: float, base: float, group_index: int) -> float:
    """OneCycleLR: absolute. Up from eta_max/div_factor to eta_max, then down (cos or linear)."""
    eta_max = args["eta_max"]
    eta_max = eta_max[group_index] if isinstance(eta_max, (list, tuple)) else eta_max
    initial = eta_max / args["div_factor"]
    points = {"initial": initial, "max": eta_max, "min": initial / args["final_div_factor"]}
    start_step = 0
    phases = args["phases"]
    for i, (end_step, start_name, end_name) in enumerate(phases):
        if t <= end_step or i == len(phases) - 1:
            pct = (t - start_step) / (end_step - start_step)
            start, end = points[start_name], points[end_name]
            if args["anneal_strategy"] == "cos":
                cos_out = math.cos(math.pi * pct) + 1
                return end + (start - end) / 2.0 * cos_out
            return (end - start) * pct + start
        start_step = end_step
    raise AssertionError("unreachable: the last phase always matches")


def one_cycle_phases(total_steps: int, pct_start: float, three_phase: bool) -> list[tuple[float, str, str]]:
    """The (end step, start point, end point) phases of OneCycleLR, as MMEngine computes them."""
    if three_phase:
        return [
            (float(pct_start * total_steps) - 1, "initial", "max"),
            (float(2 * pct_start * total_steps) - 2, "max", "initial"),
            (total_steps - 1, "initial", "min"),
        ]
    return [(float(pct_start * total_steps) - 1, "initial", "max"), (total_steps - 1, "max", "min")]


def cosine_restart_step(args: Mapping[str, Any], t: int, value: float, base: float) -> float:
    """CosineRestartLR: ``base * restart_weight`` at the start of each period, recursive cosine inside it."""
    cumulative = args["cumulative_periods"]
    index = next((i for i, period_end in enumerate(cumulative) if t < period_end), None)
    if index is None:
        return value
    eta_min = _eta_min(args, base)
    step = t - (0 if index == 0 else cumulative[index - 1])
    if step == 0:
        return base * args["restart_weights"][index]
    period = args["periods"][index]
    return (1 + math.cos(math.pi * step / period)) / (1 + math.cos(math.pi * (step - 1) / period)) * (
        value - eta_min
    ) + eta_min


def plateau_reduce(args: Mapping[str, Any], value: float, group_index: int) -> float:
    """ReduceOnPlateau: ``max(value * factor, min_value)``, kept only when it lowers the value by more than eps."""
    min_value = args["min_value"]
    min_value = min_value[group_index] if isinstance(min_value, (list, tuple)) else min_value
    reduced = max(float(value) * args["factor"], min_value)
    return reduced if value - reduced > args["eps"] else value


def plateau_is_better(args: Mapping[str, Any], metric: float, best: float) -> bool:
    """Whether ``metric`` improves on ``best`` under ``rule`` (less/greater) and ``threshold_rule`` (rel/abs)."""
    threshold = args["threshold"]
    if args["rule"] == "less":
        return metric < best * (1.0 - threshold) if args["threshold_rule"] == "rel" else metric < best - threshold
    return metric > best * (threshold + 1.0) if args["threshold_rule"] == "rel" else metric > best + threshold


def plateau_update(args: Mapping[str, Any], state: dict[str, Any], metric: float) -> bool:
    """One validation of a ReduceOnPlateau segment: update ``state`` (best, num_bad_epochs,
    cooldown_counter) in place and return whether the value is reduced now."""
    if state["best"] is None or plateau_is_better(args, metric, state["best"]):
        state["best"] = metric
        state["num_bad_epochs"] = 0
    else:
        state["num_bad_epochs"] += 1
    if state["cooldown_counter"] > 0:
        state["cooldown_counter"] -= 1
        state["num_bad_epochs"] = 0
    if state["num_bad_epochs"] > args["patience"]:
        state["cooldown_counter"] = args["cooldown"]
        state["num_bad_epochs"] = 0
        return True
    return False


CHAINED_STEPS = {
    "Constant": constant_step,
    "Linear": linear_step,
    "Step": step_step,
    "MultiStep": multistep_step,
    "Exponential": exponential_step,
    "CosineAnnealing": cosine_annealing_step,
    "Poly": poly_step,
    "CosineRestart": cosine_restart_step,
}
"""Shape -> its step function ``(args, t, value, base) -> next value``."""
