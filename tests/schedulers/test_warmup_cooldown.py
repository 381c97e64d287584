"""Warmups, cooldowns and per-group LRs, read from the optimizer at every step of real Trainer runs.

S = 10 optimizer steps per epoch, E = 6 epochs unless a test says otherwise, lr0 = 0.1.
"""

from __future__ import annotations

import math

import pytest

from callbacks import Callback, Phase
from registry import LR_WARMUPS, register_lr_warmup
from schedulers import LRCallbackBase
from schedulers.warmup import LinearBatchLRWarmup, LinearEpochLRWarmup, warmup_class
from trainer import Trainer


class StepLRRecorder(Callback):
    """The LR of every param group at each optimizer step, read right before the step."""

    def __init__(self) -> None:
        self.lrs: list[tuple[float, ...]] = []

    def on_train_batch_gradient_step_start(self, context) -> None:
        self.lrs.append(tuple(group["lr"] for group in context.optimizer.param_groups))


def run_lrs(make_model, make_loader, tmp_path, num_batches: int = 10, groups: bool = False, **params):
    """Train the tiny MLP (6 epochs unless given) and return each step's LR (first group, or all groups)."""
    recorder = StepLRRecorder()
    training_params = {
        "max_epochs": 6,
        "initial_lr": 0.1,
        "loss": "CrossEntropyLoss",
        "silent_mode": True,
        "save_model": False,
        **params,
        "phase_callbacks": [recorder],
    }
    Trainer("warmup", ckpt_root_dir=str(tmp_path)).train(
        make_model(), training_params, make_loader(num_batches, batch_size=2)
    )
    return recorder.lrs if groups else [lrs[0] for lrs in recorder.lrs]


def per_epoch(values: list[float], steps: int = 10) -> list[float]:
    return [value for value in values for _ in range(steps)]


# ---------------------------------------------------------------------- warmup with a constant LR


def test_epoch_warmup_then_constant(make_model, make_loader, tmp_path):
    lrs = run_lrs(make_model, make_loader, tmp_path, max_epochs=4, lr_warmup_epochs=3)
    start = 0.1 / 4
    assert lrs == per_epoch([start, start + (0.1 - start) * 1 / 3, start + (0.1 - start) * 2 / 3, 0.1])


def test_batch_warmup_is_not_capped_at_one_epoch(make_model, make_loader, tmp_path):
    lrs = run_lrs(make_model, make_loader, tmp_path, max_epochs=3, lr_warmup_steps=25, warmup_initial_lr=0.01)
    assert lrs == [0.01 + (0.1 - 0.01) * k / 25 for k in range(25)] + [0.1] * 5


def test_batch_warmup_counts_optimizer_steps_not_micro_batches(make_model, make_loader, tmp_path):
    # 10 batches, batch_accumulate 4: windows of 4, 4, 2 batches -> S = 3.
    lrs = run_lrs(make_model, make_loader, tmp_path, max_epochs=3, batch_accumulate=4, lr_warmup_steps=4)
    start = 0.1 / 5
    assert lrs == [start + (0.1 - start) * k / 4 for k in range(4)] + [0.1] * 5


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, None),
        ({"lr_warmup_epochs": 2}, LinearEpochLRWarmup),
        ({"lr_warmup_steps": 5}, LinearBatchLRWarmup),
        ({"warmup_mode": "LinearEpochLRWarmup"}, LinearEpochLRWarmup),
        ({"warmup_mode": "linear_batch_step", "lr_warmup_steps": 5}, LinearBatchLRWarmup),
    ],
)
def test_warmup_mode_is_inferred_from_the_length_keys(params, expected):
    assert warmup_class({"warmup_mode": None, "lr_warmup_epochs": 0, "lr_warmup_steps": 0, **params}) is expected


def test_explicit_warmup_mode_without_a_length_adds_no_warmup(make_model, make_loader, tmp_path):
    assert run_lrs(make_model, make_loader, tmp_path, max_epochs=1, warmup_mode="LinearEpochLRWarmup") == [0.1] * 10


# ---------------------------------------------------------------------- per-group LRs


def test_each_group_warms_up_to_its_own_initial_lr(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        groups=True,
        max_epochs=3,
        initial_lr={"2": 0.02, "default": 0.1},
        lr_warmup_epochs=2,
    )
    head, body = 0.02 / 3, 0.1 / 3
    assert lrs == per_epoch([(head, body), (head + (0.02 - head) * 1 / 2, body + (0.1 - body) * 1 / 2), (0.02, 0.1)])


def test_warmup_initial_lr_mapping_and_a_frozen_group(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        groups=True,
        max_epochs=2,
        initial_lr={"2": 0.0, "default": 0.1},
        lr_mode="CosineLRScheduler",
        lr_warmup_steps=4,
        warmup_initial_lr={"2": 0.0, "default": 0.02},
    )
    assert [head for head, _ in lrs] == [0.0] * 20
    assert [body for _, body in lrs][:4] == [0.02 + (0.1 - 0.02) * k / 4 for k in range(4)]
    cosine = [0.1 * 0.01 + (0.1 - 0.1 * 0.01) * 0.5 * (1 + math.cos(math.pi * t / 16)) for t in range(16)]
    assert [body for _, body in lrs][4:] == cosine


def test_a_number_warmup_initial_lr_leaves_a_frozen_group_at_zero(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        groups=True,
        max_epochs=2,
        initial_lr={"2": 0.0, "default": 0.1},
        lr_warmup_epochs=1,
        warmup_initial_lr=0.01,
    )
    assert lrs == per_epoch([(0.0, 0.01), (0.0, 0.1)])


def test_groups_split_by_zero_weight_decay_share_their_lr(make_model, make_loader, tmp_path):
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        groups=True,
        max_epochs=2,
        initial_lr={"2": 0.02, "default": 0.1},
        zero_weight_decay_on_bias_and_bn=True,
        lr_mode="StepLRScheduler",
        lr_updates=[0],
        lr_decay_factor=0.5,
    )
    assert lrs == per_epoch([(0.02, 0.02, 0.1, 0.1), (0.01, 0.01, 0.05, 0.05)])


# ---------------------------------------------------------------------- cooldown


@pytest.mark.parametrize(
    ("lr_mode", "extra", "formula"),
    [
        ("PolyLRScheduler", {}, lambda t: 0.1 * (1 - t / 30) ** 0.9),
        ("ExponentialLRScheduler", {"lr_decay_factor": 0.5}, lambda t: 0.1 * 0.5 ** (t / 10)),
    ],
    ids=["poly", "exponential"],
)
def test_cooldown_compresses_the_schedule_and_holds_its_last_value(
    make_model, make_loader, tmp_path, lr_mode, extra, formula
):
    # W = 20 (two warmup epochs), C = 10, T = 30.
    lrs = run_lrs(make_model, make_loader, tmp_path, lr_mode=lr_mode, lr_warmup_epochs=2, lr_cooldown_epochs=1, **extra)
    start = 0.1 / 3
    assert lrs[:20] == per_epoch([start, start + (0.1 - start) * 1 / 2])
    assert lrs[20:50] == [formula(t) for t in range(30)]
    assert lrs[50:] == [formula(29)] * 10


# ---------------------------------------------------------------------- a user's warmup


class HoldWarmup(LRCallbackBase):
    """A user warmup: a fixed LR for the lr_warmup_epochs epochs, at each epoch start."""

    def __init__(self, hold_lr: float = 0.001, **kwargs):
        super().__init__(Phase.TRAIN_EPOCH_START, **kwargs)
        self.hold_lr = hold_lr

    def is_lr_scheduling_enabled(self, context) -> bool:
        return context.epoch <= self.training_params.lr_warmup_epochs

    def perform_scheduling(self, context) -> None:
        self.lr = self.hold_lr if context.epoch < self.training_params.lr_warmup_epochs else self.initial_lr
        self.update_lr(context.optimizer, context.epoch, None)


def test_registered_user_warmup_and_its_own_param(make_model, make_loader, tmp_path):
    if "hold_warmup" not in LR_WARMUPS:
        register_lr_warmup("hold_warmup")(HoldWarmup)
    lrs = run_lrs(
        make_model,
        make_loader,
        tmp_path,
        max_epochs=4,
        warmup_mode="hold_warmup",
        hold_lr=0.003,
        lr_warmup_epochs=2,
        lr_mode="StepLRScheduler",
        lr_updates=[2],
        lr_decay_factor=0.5,
    )
    assert lrs == per_epoch([0.003, 0.003, 0.1, 0.05])
