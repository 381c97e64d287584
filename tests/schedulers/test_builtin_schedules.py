"""The built-in schedules, read from the optimizer at every optimizer step of real Trainer runs.

Clock of most tables: S = 10 optimizer steps per epoch (10 batches), E = 6 epochs, N = 60, lr0 = 0.1.
The LR of step k is read at TRAIN_BATCH_GRADIENT_STEP_START of the batch that closes step k.
Expected values are written with the documented formulas, independently of schedulers.schedule_math.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

import schedulers
from callbacks import Callback, CallbackList, Phase
from registry import LR_SCHEDULERS, register_lr_scheduler
from schedulers import LRCallbackBase
from trainer import Trainer
from trainer.builders import build_optimizer
from trainer.params import resolve_training_params

LR0 = 0.1


class StepLRRecorder(Callback):
    """Per optimizer step: (epoch, global_step, LR of each param group), read right before the step."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, tuple[float, ...]]] = []

    def on_train_batch_gradient_step_start(self, context) -> None:
        self.rows.append((context.epoch, context.global_step, tuple(g["lr"] for g in context.optimizer.param_groups)))


def run_lrs(make_model, make_loader, tmp_path, num_batches: int = 10, groups: bool = False, **params):
    """Train the tiny MLP for max_epochs (default 6) and return the LR of each optimizer step.

    Returns the first group's LR per step, or the tuple of all groups' LRs with ``groups=True``.
    """
    recorder = StepLRRecorder()
    training_params = {
        "max_epochs": 6,
        "initial_lr": LR0,
        "optimizer": "SGD",
        "loss": "CrossEntropyLoss",
        "silent_mode": True,
        "save_model": False,
        **params,
        "phase_callbacks": [*params.get("phase_callbacks", []), recorder],
    }
    Trainer("lr", ckpt_root_dir=str(tmp_path)).train(
        make_model(), training_params, make_loader(num_batches, batch_size=2)
    )
    assert [row[1] for row in recorder.rows] == list(range(len(recorder.rows)))
    return [row[2] if groups else row[2][0] for row in recorder.rows]


def per_epoch(values: list[float], steps: int = 10) -> list[float]:
    """Expand one value per epoch to one per step."""
    return [value for value in values for _ in range(steps)]


def cosine(lr0: float, t: int, total: int, r: float = 0.01) -> float:
    return lr0 * r + (lr0 - lr0 * r) * 0.5 * (1 + math.cos(math.pi * t / total))


# ---------------------------------------------------------------------- StepLRScheduler


def test_step_decays_after_each_listed_epoch(make_model, make_loader, tmp_path):
    lrs = run_lrs(make_model, make_loader, tmp_path, lr_mode="StepLRScheduler", lr_updates=[1, 3], lr_decay_factor=0.5)
    assert lrs == per_epoch([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_step_update_freq_means_every_f_epochs(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model, make_loader, tmp_path, lr_mode="StepLRScheduler", step_lr_update_freq=2, lr_decay_factor=0.5
    )
    assert lrs == per_epoch([0.1, 0.1, 0.1, 0.05, 0.05, 0.025])


def test_step_update_freq_starts_counting_after_the_warmup(make_model, make_loader, tmp_path):
    # f = 1 after 2 warmup epochs: lr_updates [2, 3, 4], as SuperGradients computes them.
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        max_epochs=5,
        lr_mode="StepLRScheduler",
        step_lr_update_freq=1,
        lr_decay_factor=0.5,
        lr_warmup_epochs=2,
    )
    start = 0.1 / 3
    assert lrs == per_epoch([start, start + (0.1 - start) * 1 / 2, 0.1, 0.05, 0.025])


def test_step_counts_absolute_epochs_after_epoch_warmup(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        lr_mode="StepLRScheduler",
        lr_updates=[0, 3],
        lr_decay_factor=0.5,
        lr_warmup_epochs=2,
    )
    start = 0.1 / 3
    assert lrs == per_epoch([start, start + (0.1 - start) * 1 / 2, 0.05, 0.05, 0.025, 0.025])


def test_step_takes_over_where_a_per_step_warmup_ends_inside_an_epoch(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        lr_mode="StepLRScheduler",
        lr_updates=[0, 3],
        lr_decay_factor=0.5,
        lr_warmup_steps=15,
    )
    start = 0.1 / 16
    assert lrs[:15] == [start + (0.1 - start) * k / 15 for k in range(15)]
    assert lrs[15:] == [0.05] * 25 + [0.025] * 20


def test_step_holds_the_last_epoch_before_the_cooldown(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        lr_mode="StepLRScheduler",
        lr_updates=[0, 1, 2, 3, 4],
        lr_decay_factor=0.5,
        lr_cooldown_epochs=2,
    )
    assert lrs == per_epoch([0.1, 0.05, 0.025, 0.0125, 0.0125, 0.0125])


# ---------------------------------------------------------------------- per-step schedules


def test_cosine_per_step_over_the_whole_run(make_model, make_loader, tmp_path):
    lrs = run_lrs(make_model, make_loader, tmp_path, lr_mode="CosineLRScheduler")
    assert lrs == [cosine(0.1, k, 60) for k in range(60)]
    assert lrs[0] == pytest.approx(0.1, rel=1e-12)
    assert lrs[30] == pytest.approx(0.0505, rel=1e-12)


def test_cosine_after_epoch_warmup_and_before_cooldown(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        lr_mode="CosineLRScheduler",
        cosine_final_lr_ratio=0.1,
        lr_warmup_epochs=1,
        lr_cooldown_epochs=1,
    )
    # W = 10, C = 10, T = 40: the warmup epoch at lr0 / 2, then t = 0..39, then held at t = 39.
    assert lrs[:10] == [0.05] * 10
    assert lrs[10:50] == [cosine(0.1, t, 40, 0.1) for t in range(40)]
    assert lrs[50:] == [cosine(0.1, 39, 40, 0.1)] * 10
    assert lrs[10] == pytest.approx(0.1, rel=1e-12)


def test_poly_with_per_step_warmup_and_accumulation(make_model, make_loader, tmp_path):
    # 9 batches, batch_accumulate 2: S = 5 (the last window has one batch), N = 30, W = 5, T = 25.
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        num_batches=9,
        batch_accumulate=2,
        lr_mode="PolyLRScheduler",
        lr_warmup_steps=5,
    )
    start = 0.1 / 6
    assert len(lrs) == 30
    assert lrs[:5] == [start + (0.1 - start) * k / 5 for k in range(5)]
    assert lrs[5:] == [0.1 * (1 - t / 25) ** 0.9 for t in range(25)]


def test_exponential_smooth_per_step_for_two_named_groups(make_model, make_loader, tmp_path):
    # The tiny MLP's parameters are 0.weight, 0.bias (group "default") and 2.weight, 2.bias (group "2").
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        groups=True,
        initial_lr={"2": 0.02, "default": 0.1},
        lr_mode="ExponentialLRScheduler",
        lr_decay_factor=0.5,
    )
    assert lrs == [(0.02 * 0.5 ** (k / 10), 0.1 * 0.5 ** (k / 10)) for k in range(60)]
    assert lrs[10] == (0.01, 0.05)


def linear_to_zero(initial_lr, epoch, iter, max_epoch, iters_per_epoch):
    """A schedule function for FunctionLRScheduler: linear from initial_lr to 0 over the main schedule."""
    return initial_lr * (1 - (epoch * iters_per_epoch + iter) / (max_epoch * iters_per_epoch))


def test_function_by_import_path_with_warmup_and_cooldown(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        lr_mode="FunctionLRScheduler",
        lr_schedule_function=f"{__name__}:linear_to_zero",
        lr_warmup_epochs=1,
        lr_cooldown_epochs=1,
    )
    main = [linear_to_zero(0.1, k // 10 - 1, k % 10, 4, 10) for k in range(10, 50)]
    assert lrs == [0.05] * 10 + main + [linear_to_zero(0.1, 3, 9, 4, 10)] * 10


def test_function_receives_the_clock_by_keyword(make_model, make_loader, tmp_path):
    calls = []

    def schedule(**kwargs):
        calls.append(kwargs)
        return kwargs["initial_lr"] / (1 + kwargs["epoch"])

    lrs = run_lrs(
        make_model, make_loader, tmp_path, max_epochs=2, lr_mode="FunctionLRScheduler", lr_schedule_function=schedule
    )
    assert lrs == [0.1] * 10 + [0.05] * 10
    assert calls[0] == {"initial_lr": 0.1, "epoch": 0, "iter": 0, "max_epoch": 2, "iters_per_epoch": 10}
    assert calls[13] == {"initial_lr": 0.1, "epoch": 1, "iter": 3, "max_epoch": 2, "iters_per_epoch": 10}


def test_supergradients_names_are_aliases(make_model, make_loader, tmp_path):
    assert run_lrs(make_model, make_loader, tmp_path, max_epochs=2, lr_mode="cosine") == [
        cosine(0.1, k, 20) for k in range(20)
    ]


def test_lr_mode_unset_keeps_initial_lr(make_model, make_loader, tmp_path):
    assert run_lrs(make_model, make_loader, tmp_path, max_epochs=2) == [0.1] * 20


# ---------------------------------------------------------------------- purity: resume and stand-in context


class StopAfterEpoch(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_loader_end(self, context) -> None:
        if context.epoch == self.epoch:
            context.stop_training = True


def test_resumed_run_continues_on_the_same_trajectory(make_model, make_loader, tmp_path):
    params = {"lr_mode": "CosineLRScheduler", "lr_warmup_steps": 7, "save_model": True}
    full = run_lrs(make_model, make_loader, tmp_path / "full", **params)
    first = run_lrs(make_model, make_loader, tmp_path / "split", **params, phase_callbacks=[StopAfterEpoch(2)])
    recorder = StepLRRecorder()
    Trainer("lr", ckpt_root_dir=str(tmp_path / "split")).train(
        make_model(),
        {
            "max_epochs": 6,
            "initial_lr": LR0,
            "loss": "CrossEntropyLoss",
            "silent_mode": True,
            "resume": True,
            "phase_callbacks": [recorder],
            **params,
        },
        make_loader(10, batch_size=2),
    )
    assert [row[1] for row in recorder.rows] == list(range(30, 60))
    assert first + [row[2][0] for row in recorder.rows] == full


ALLOWED_CONTEXT_FIELDS = "optimizer net training_params epoch batch_idx global_step opens_step steps_per_epoch total_steps max_epochs".split()


@pytest.mark.parametrize(
    "params",
    [
        {"lr_mode": "StepLRScheduler", "lr_updates": [1, 3], "lr_decay_factor": 0.5, "lr_warmup_steps": 13},
        {"lr_mode": "CosineLRScheduler", "lr_warmup_epochs": 1, "lr_cooldown_epochs": 1, "batch_accumulate": 3},
        {
            "lr_mode": "PolyLRScheduler",
            "initial_lr": {"2": 0.02, "default": 0.1},
            "warmup_initial_lr": 0.001,
            "lr_warmup_steps": 4,
        },
    ],
    ids=["step", "cosine", "poly"],
)
def test_callbacks_read_only_the_clock_fields_of_the_context(make_model, make_loader, tmp_path, params):
    """Driving the LR callbacks with a stand-in context that has only the documented clock fields
    (as a schedule preview does) gives the trajectory of the real run."""
    real = run_lrs(make_model, make_loader, tmp_path, groups=True, **params)
    resolved = resolve_training_params(
        {"max_epochs": 6, "initial_lr": LR0, "loss": "CrossEntropyLoss", **params}, schedulers.lr_param_names
    )
    net = make_model()
    optimizer = build_optimizer(net, resolved)
    accumulate = resolved.batch_accumulate
    steps = schedulers.steps_per_epoch(10, None, accumulate)
    callbacks = CallbackList(schedulers.build_lr_callbacks(resolved, net, optimizer, 10, steps))
    context = SimpleNamespace(
        optimizer=optimizer,
        net=net,
        training_params=resolved,
        epoch=0,
        batch_idx=0,
        global_step=0,
        opens_step=False,
        steps_per_epoch=steps,
        total_steps=6 * steps,
        max_epochs=6,
    )
    preview = []
    for epoch in range(6):
        context.epoch = epoch
        callbacks.fire(Phase.TRAIN_EPOCH_START, context)
        for batch_idx in range(10):
            context.batch_idx, context.opens_step = batch_idx, batch_idx % accumulate == 0
            callbacks.fire(Phase.TRAIN_BATCH_START, context)
            if (batch_idx + 1) % accumulate == 0 or batch_idx == 9:
                preview.append(tuple(group["lr"] for group in optimizer.param_groups))
                context.global_step += 1
    assert sorted(vars(context)) == sorted(ALLOWED_CONTEXT_FIELDS)
    assert preview == real


# ---------------------------------------------------------------------- registering your own


class HalvingEachEpoch(LRCallbackBase):
    """lr0 * 0.5 ** e, written at each epoch start, from the clock only."""

    def __init__(self, **kwargs):
        super().__init__(Phase.TRAIN_EPOCH_START, **kwargs)

    def is_lr_scheduling_enabled(self, context) -> bool:
        return True

    def perform_scheduling(self, context) -> None:
        self.lr = self.initial_lr * 0.5**context.epoch
        self.update_lr(context.optimizer, context.epoch, None)


class WithOwnParam(HalvingEachEpoch):
    def __init__(self, own_factor: float = 1.0, **kwargs):
        super().__init__(**kwargs)


def test_register_lr_scheduler_bare_call_and_named_forms(make_model, make_loader, tmp_path):
    bare = register_lr_scheduler(HalvingEachEpoch)
    called = register_lr_scheduler()(WithOwnParam)
    named = register_lr_scheduler("halving_each_epoch")(HalvingEachEpoch)
    assert bare is HalvingEachEpoch and called is WithOwnParam and named is HalvingEachEpoch
    assert LR_SCHEDULERS.get("HalvingEachEpoch") is LR_SCHEDULERS.get("halving_each_epoch") is HalvingEachEpoch
    # Named constructor parameters are found through the class hierarchy; LRCallbackBase's are not keys.
    assert schedulers.lr_param_names({"lr_mode": "WithOwnParam"}) == {"own_factor"}
    lrs = run_lrs(make_model, make_loader, tmp_path, max_epochs=3, lr_mode="WithOwnParam", own_factor=2.0)
    assert lrs == per_epoch([0.1, 0.05, 0.025])
