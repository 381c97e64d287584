"""MXNet's schedules in phasetrain (docs/lr_schedules.md, "MXNet schedules"): each row of the table, run by
the real Trainer, against the values the MXNet learning-rate-schedules tutorial and API docs state.

MXNet counts iterations from 1: iteration n is optimizer step k = n - 1 here.
"""

from __future__ import annotations

import math

import pytest
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from callbacks import Callback
from trainer import Trainer


class LRs(Callback):
    def __init__(self):
        self.values: list[float] = []

    def on_train_batch_gradient_step_start(self, context):
        self.values.append(context.optimizer.param_groups[0]["lr"])


def lrs(tmp_path, steps_per_epoch: int, max_epochs: int, **params) -> list[float]:
    """The LR of every optimizer step; ``lrs(...)[n - 1]`` is MXNet's iteration n."""
    recorder = LRs()
    training_params = base_params(
        max_epochs=max_epochs,
        phase_callbacks=[recorder],
        save_model=False,
        log_steps=False,
        tensorboard=False,
        **params,
    )
    Trainer("mxnet", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), training_params, tiny_loader(steps_per_epoch, 1))
    return recorder.values


def iteration(values: list[float], n: int) -> float:
    return values[n - 1]


def test_factor_scheduler(tmp_path):
    # FactorScheduler(step=250, factor=0.5), base_lr 1: "the learning rate of the 250th iteration will be 1 and
    # the 251st iteration will be 0.5".
    values = lrs(
        tmp_path,
        100,
        6,
        initial_lr=1.0,
        param_scheduler=[{"type": "StepLR", "step_size": 250, "gamma": 0.5, "by_epoch": False}],
    )
    assert (iteration(values, 1), iteration(values, 250), iteration(values, 251)) == (1.0, 1.0, 0.5)
    assert (iteration(values, 500), iteration(values, 501), iteration(values, 600)) == (0.5, 0.25, 0.25)


def test_multi_factor_scheduler(tmp_path):
    # MultiFactorScheduler(step=[250, 750, 900], factor=0.5): halved after iterations 250, 750 and 900.
    values = lrs(
        tmp_path,
        100,
        10,
        initial_lr=1.0,
        param_scheduler=[{"type": "MultiStepLR", "milestones": [250, 750, 900], "gamma": 0.5, "by_epoch": False}],
    )
    checks = {1: 1.0, 250: 1.0, 251: 0.5, 750: 0.5, 751: 0.25, 900: 0.25, 901: 0.125, 1000: 0.125}
    assert {n: iteration(values, n) for n in checks} == checks


def test_multi_factor_scheduler_in_epochs(tmp_path):
    # The tutorial's training example: steps after epochs 4, 7 and 9 (x iterations per epoch), factor 0.1,
    # learning_rate 0.03; the LR at the first batch of epochs 1..10 is 0.03 x4, 0.003 x3, 0.0003 x2, 0.00003.
    values = lrs(
        tmp_path,
        3,
        10,
        initial_lr=0.03,
        param_scheduler=[{"type": "MultiStepLR", "milestones": [4, 7, 9], "gamma": 0.1}],
    )
    firsts = values[::3]
    assert firsts == pytest.approx([0.03] * 4 + [0.003] * 3 + [0.0003] * 2 + [0.00003], rel=1e-12)


def poly(iteration: int) -> float:
    """PolyScheduler(max_update=1000, base_lr=1, pwr=2) in MXNet's form."""
    return (1 - min(iteration, 1000) / 1000) ** 2


def test_poly_scheduler_as_an_mxnet_function(tmp_path):
    # "a quadratic function (pwr=2) that falls from 0.998 at iteration 1 to 0 at iteration 1000", then stays at 0.
    values = lrs(tmp_path, 110, 10, initial_lr=1.0, lr_mode="FunctionLRScheduler", lr_schedule_function=poly)
    assert iteration(values, 1) == pytest.approx(0.998001, rel=1e-12)  # (1 - 1/1000)**2, "0.998" in the tutorial
    assert (iteration(values, 500), iteration(values, 1000), iteration(values, 1100)) == (0.25, 0.0, 0.0)


class CosineAnnealingSchedule:
    """The tutorial's custom schedule: a callable object of the iteration (from 1)."""

    def __init__(self, min_lr, max_lr, cycle_length):
        self.min_lr, self.max_lr, self.cycle_length = min_lr, max_lr, cycle_length

    def __call__(self, iteration):
        if iteration <= self.cycle_length:
            unit_cycle = (1 + math.cos(iteration * math.pi / self.cycle_length)) / 2
            return unit_cycle * (self.max_lr - self.min_lr) + self.min_lr
        return self.min_lr


def test_a_callable_object_of_the_iteration(tmp_path):
    schedule = CosineAnnealingSchedule(min_lr=0, max_lr=1, cycle_length=1000)
    values = lrs(tmp_path, 110, 10, initial_lr=1.0, lr_mode="FunctionLRScheduler", lr_schedule_function=schedule)
    assert values == [schedule(n) for n in range(1, 1101)]
    assert iteration(values, 500) == pytest.approx(0.5, abs=1e-15) and iteration(values, 1000) == 0.0


def mxnet_cosine(
    n: int,
    max_update: int,
    base_lr: float,
    final_lr: float,
    warmup_steps: int,
    warmup_begin_lr: float,
    warmup_mode: str,
) -> float:
    """mx.lr_scheduler.CosineScheduler at iteration n, as its documentation states it."""
    if n < warmup_steps:
        if warmup_mode == "constant":
            return warmup_begin_lr
        return warmup_begin_lr + (base_lr - warmup_begin_lr) * n / warmup_steps
    n = min(n, max_update)
    return (
        final_lr + (base_lr - final_lr) * (1 + math.cos(math.pi * (n - warmup_steps) / (max_update - warmup_steps))) / 2
    )


@pytest.mark.parametrize("warmup_mode", ["linear", "constant"])
def test_cosine_scheduler_with_warmup(tmp_path, warmup_mode):
    # CosineScheduler(max_update=40, base_lr=0.5, final_lr=0.01, warmup_steps=6, warmup_begin_lr=0.05, warmup_mode)
    m, b, f, w, w0 = 40, 0.5, 0.01, 6, 0.05
    warmup = (
        {"type": "LinearLR", "start_factor": (w0 + (b - w0) / w) / b, "by_epoch": False, "end": w}
        if warmup_mode == "linear"
        else {"type": "ConstantLR", "factor": w0 / b, "by_epoch": False, "end": w}
    )
    cosine = {"type": "CosineAnnealingLR", "eta_min": f, "T_max": m - w, "by_epoch": False, "begin": w - 1, "end": m}
    values = lrs(tmp_path, 10, 5, initial_lr=b, param_scheduler=[warmup, cosine])
    want = [mxnet_cosine(n, m, b, f, w, w0, warmup_mode) for n in range(1, 51)]
    assert values == pytest.approx(want, rel=1e-9)
    assert iteration(values, 1) == pytest.approx(0.125 if warmup_mode == "linear" else 0.05, rel=1e-12)
    assert iteration(values, w) == pytest.approx(b, rel=1e-12) and iteration(values, 50) == pytest.approx(f, rel=1e-12)


def sg_keyword(initial_lr, epoch, iter, max_epoch, iters_per_epoch):
    return initial_lr / (1 + epoch)


def test_the_supergradients_keyword_form_keeps_working(tmp_path):
    values = lrs(tmp_path, 2, 3, initial_lr=0.3, lr_mode="FunctionLRScheduler", lr_schedule_function=sg_keyword)
    assert values == [0.3, 0.3, 0.3 / 2, 0.3 / 2, 0.3 / 3, 0.3 / 3]


def both_forms(iteration=1, initial_lr=0.1, epoch=0, iter=0, max_epoch=1, iters_per_epoch=1):
    return initial_lr


def no_form(a, b):
    return a


@pytest.mark.parametrize(
    ("function", "match"),
    [
        (
            both_forms,
            r"'both_forms'\(iteration=1, .*\) fits both forms: it takes one positional argument \(MXNet's "
            r"f\(iteration\)\) and the keywords initial_lr, epoch, iter, max_epoch, iters_per_epoch",
        ),
        (
            no_form,
            r"'no_form'\(a, b\) fits neither form: MXNet's f\(iteration\) -> lr \(one parameter\) or "
            r"SuperGradients' f\(initial_lr, epoch, iter, max_epoch, iters_per_epoch\) -> lr",
        ),
    ],
)
def test_a_function_of_unclear_form_is_an_error(tmp_path, function, match):
    with pytest.raises(TypeError, match=match):
        lrs(tmp_path, 2, 1, lr_mode="FunctionLRScheduler", lr_schedule_function=function)


def test_the_mxnet_form_with_per_group_lrs_is_an_error(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"MXNet's form f\(iteration\) gives one LR for every param group, but "
        r"initial_lr \{'0': 0.01, 'default': 0.1\}",
    ):
        lrs(
            tmp_path,
            2,
            1,
            initial_lr={"0": 0.01, "default": 0.1},
            lr_mode="FunctionLRScheduler",
            lr_schedule_function=poly,
        )
