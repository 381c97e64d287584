"""Micro-benchmark: one per-step LR update of phasetrain against one torch scheduler ``step()``.

Usage::

    python benchmarks/sched_micro.py            # 1 and 100 param groups, 7 repeats of 2000 updates
    python benchmarks/sched_micro.py --quick    # fewer updates and repeats

Compared, per optimizer step, for an SGD optimizer with 1 and with 100 param groups:

- ``builtin CosineLRScheduler``: phasetrain's built-in per-step schedule as the loop runs it,
  ``CallbackList.fire(Phase.TRAIN_BATCH_START, context)`` (dispatch, the enabled check, the pure
  cosine of the clock for each group, the write into ``param_groups``).
- ``torch CosineAnnealingLR.step()``: torch's closest equivalent, called bare.
- ``torch OneCycleLR.step()``: the schedule of the overhead benchmark's raw loop, called bare.
- ``wrapped CosineAnnealingLR``: the torch scheduler through phasetrain's wrapper (lr_mode mapping),
  ``CallbackList.fire(Phase.TRAIN_BATCH_STEP, context)``: the wrapper's own cost on top of ``step()``.
- ``param_scheduler CosineAnnealingLR``: the same cosine as an MMEngine-style ``param_scheduler``
  segment counted in optimizer steps, ``CallbackList.fire(Phase.TRAIN_BATCH_START, context)``
  (dispatch, one chained step of the timeline, the write into ``param_groups``).
- ``param_scheduler 3 keys``: a LinearLR warmup and a cosine on ``lr``, a cosine on ``momentum`` and a
  linear ``weight_decay`` schedule, per step: three keys written into every group.

The targets: the built-in's update costs no more than a torch scheduler ``step()`` (issue 7); a
``param_scheduler`` update costs at most twice the built-in's (issue 10); for 1 and for 100 groups. Each cell is the median (min) over repeats of the mean time per update.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import schedulers
from callbacks import CallbackList, Phase, PhaseContext
from trainer.builders import build_optimizer
from trainer.params import resolve_training_params

LR = 0.1
STEPS_PER_EPOCH = 100


def make_optimizer(num_groups: int) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) over ``num_groups`` groups of one small parameter each."""
    net = nn.ParameterList([nn.Parameter(torch.zeros(8)) for _ in range(num_groups)])
    optimizer = torch.optim.SGD([{"params": [param]} for param in net], lr=LR, momentum=0.9)
    return net, optimizer


def phasetrain_update(
    num_groups: int, num_updates: int, lr_mode: Any, phase: Phase, param_scheduler: list | None = None
) -> Callable[[], float]:
    """A function that runs ``num_updates`` updates of the LR callbacks of ``lr_mode`` (or of
    ``param_scheduler``) and returns the seconds taken."""
    net, optimizer = make_optimizer(num_groups)
    epochs = -(-num_updates // STEPS_PER_EPOCH)
    params = resolve_training_params(
        {
            "max_epochs": epochs,
            "initial_lr": LR,
            "optimizer": optimizer,
            "loss": "CrossEntropyLoss",
            "lr_mode": lr_mode,
            "param_scheduler": param_scheduler or [],
        },
        extra_known_keys=schedulers.lr_param_names,
    )
    optimizer = build_optimizer(net, params)
    callbacks = CallbackList(schedulers.build_lr_callbacks(params, net, optimizer, STEPS_PER_EPOCH, STEPS_PER_EPOCH))
    context = PhaseContext(
        experiment_name="sched_micro",
        ckpt_dir="",
        device=torch.device("cpu"),
        training_params=params,
        net=net,
        optimizer=optimizer,
        criterion=nn.CrossEntropyLoss(),
        scaler=None,
        train_loader=None,
        valid_loader=None,
        max_epochs=epochs,
        steps_per_epoch=STEPS_PER_EPOCH,
        total_steps=epochs * STEPS_PER_EPOCH,
        opens_step=True,
        closes_step=True,
        optimizer_stepped=True,
    )
    fire = callbacks.fire

    def run() -> float:
        started = time.perf_counter()
        for step in range(num_updates):
            context.global_step = step
            context.epoch, context.batch_idx = divmod(step, STEPS_PER_EPOCH)
            fire(phase, context)
        return time.perf_counter() - started

    return run


def torch_update(
    num_groups: int, num_updates: int, build: Callable[[torch.optim.Optimizer, int], Any]
) -> Callable[[], float]:
    """A function that runs ``num_updates`` bare ``scheduler.step()`` calls and returns the seconds taken.

    The loop also sets the same three clock fields as the phasetrain loop, so both pay the same loop.
    """
    _, optimizer = make_optimizer(num_groups)
    scheduler = build(optimizer, num_updates)
    context = PhaseContext(
        "sched_micro", "", torch.device("cpu"), None, None, optimizer, None, None, None, None, 1, 1, 1
    )
    step_scheduler = scheduler.step

    def run() -> float:
        started = time.perf_counter()
        for step in range(num_updates):
            context.global_step = step
            context.epoch, context.batch_idx = divmod(step, STEPS_PER_EPOCH)
            step_scheduler()
        return time.perf_counter() - started

    return run


def cases(num_updates: int) -> dict[str, Callable[[int], Callable[[], float]]]:
    """Name -> (number of groups -> a timed run)."""
    total = -(-num_updates // STEPS_PER_EPOCH) * STEPS_PER_EPOCH
    wrapped = {"CosineAnnealingLR": {"T_max": total, "phase": "TRAIN_BATCH_STEP"}}
    return {
        "builtin CosineLRScheduler": lambda groups: phasetrain_update(
            groups, num_updates, "CosineLRScheduler", Phase.TRAIN_BATCH_START
        ),
        "torch CosineAnnealingLR.step()": lambda groups: torch_update(
            groups, num_updates, lambda opt, n: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        ),
        "torch OneCycleLR.step()": lambda groups: torch_update(
            groups,
            num_updates,
            lambda opt, n: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=total + 1),
        ),
        "wrapped CosineAnnealingLR": lambda groups: phasetrain_update(
            groups, num_updates, wrapped, Phase.TRAIN_BATCH_STEP
        ),
        "param_scheduler CosineAnnealingLR": lambda groups: phasetrain_update(
            groups, num_updates, None, Phase.TRAIN_BATCH_START, [{"type": "CosineAnnealingLR", "by_epoch": False}]
        ),
        "param_scheduler 3 keys": lambda groups: phasetrain_update(
            groups, num_updates, None, Phase.TRAIN_BATCH_START, THREE_KEYS
        ),
    }


THREE_KEYS = [
    {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "end": 50},
    {"type": "CosineAnnealingLR", "eta_min_ratio": 0.01, "by_epoch": False, "begin": 50},
    {"type": "CosineAnnealingMomentum", "eta_min": 0.95, "by_epoch": False},
    {
        "type": "LinearParamScheduler",
        "param_name": "weight_decay",
        "start_factor": 1.0,
        "end_factor": 0.1,
        "by_epoch": False,
    },
]
"""A per-step schedule of lr, momentum and weight_decay (as digits_mmengine_style, all in optimizer steps)."""


def measure(num_updates: int, repeats: int, group_counts: list[int]) -> dict[tuple[str, int], list[float]]:
    """Microseconds per update for every case and group count, one value per repeat (fresh state each time).

    Repeats are interleaved across cases, so a slow moment of the machine hits every case alike.
    """
    results: dict[tuple[str, int], list[float]] = {}
    builders = cases(num_updates)
    for _ in range(repeats):
        for groups in group_counts:
            for name, build in builders.items():
                run = build(groups)
                results.setdefault((name, groups), []).append(1e6 * run() / num_updates)
    return results


def report(results: dict[tuple[str, int], list[float]], group_counts: list[int]) -> str:
    """A Markdown table (µs per update, median (min)) and the target lines."""
    names = list(dict.fromkeys(name for name, _ in results))
    lines = [
        "| update | " + " | ".join(f"{groups} group{'s' if groups > 1 else ''} µs" for groups in group_counts) + " |"
    ]
    lines.append("|---|" + "---|" * len(group_counts))
    for name in names:
        cells = [f"{statistics.median(results[name, g]):.2f} ({min(results[name, g]):.2f})" for g in group_counts]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for groups in group_counts:
        ours = statistics.median(results["builtin CosineLRScheduler", groups])
        for torch_name in ("torch CosineAnnealingLR.step()", "torch OneCycleLR.step()"):
            theirs = statistics.median(results[torch_name, groups])
            verdict = "MET" if ours <= theirs else "MISSED"
            lines.append(f"{groups} groups: builtin {ours:.2f} µs <= {torch_name} {theirs:.2f} µs: {verdict}")
        if ("param_scheduler CosineAnnealingLR", groups) in results:
            param = statistics.median(results["param_scheduler CosineAnnealingLR", groups])
            verdict = "MET" if param <= 2 * ours else "MISSED"
            lines.append(f"{groups} groups: param_scheduler {param:.2f} µs <= 2 x builtin {2 * ours:.2f} µs: {verdict}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 updates, 3 repeats")
    parser.add_argument("--updates", type=int, default=None, help="updates per repeat (default 2000)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats (default 7)")
    args = parser.parse_args(argv)
    num_updates = args.updates or (200 if args.quick else 2000)
    repeats = args.repeats or (3 if args.quick else 7)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before `optimizer.step\(\)`")
    group_counts = [1, 100]
    print(f"torch {torch.__version__}; {num_updates} updates x {repeats} repeats; µs per update, median (min)")
    print(report(measure(num_updates, repeats, group_counts), group_counts))


if __name__ == "__main__":
    main()
