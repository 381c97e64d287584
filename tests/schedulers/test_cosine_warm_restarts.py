"""CosineWarmRestartsLRScheduler: per-step values of real runs against hand-derived tables, and its restart epochs.

The LR of step k is read right before the optimizer uses it. Cosines of the tables:
cos(pi/4) = 0.70710678..., cos(pi/8) = 0.92387953..., cos(3pi/8) = 0.38268343...
"""

from __future__ import annotations

import math

import pytest
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from callbacks import Callback
from trainer import Trainer

C4, C8, C38 = math.cos(math.pi / 4), math.cos(math.pi / 8), math.cos(3 * math.pi / 8)


class LRRecorder(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_gradient_step_start(self, context) -> None:
        self.lrs.append(context.optimizer.param_groups[0]["lr"])


def _lrs(tmp_path, num_batches, **params):
    recorder = LRRecorder()
    settings = base_params(initial_lr=1.0, lr_mode="CosineWarmRestartsLRScheduler", save_model=False, **params)
    settings["phase_callbacks"] = [recorder]
    Trainer("warm", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), settings, tiny_loader(num_batches))
    return recorder.lrs


def test_cycles_double_and_peaks_decay(tmp_path):
    # S = 2 steps per epoch, P = 1, m = 2: cycles of 2, 4 and 8 steps (epochs 1, 2-3, 4-7); d = 0.5, r = 0.
    lrs = _lrs(
        tmp_path,
        2,
        max_epochs=7,
        restart_period_epochs=1,
        restart_period_mult=2,
        cosine_final_lr_ratio=0.0,
        restart_lr_decay=0.5,
    )
    expected = [
        1.0, 0.5,
        0.5, 0.25 * (1 + C4), 0.25, 0.25 * (1 - C4),
        0.25, 0.125 * (1 + C8), 0.125 * (1 + C4), 0.125 * (1 + C38),
        0.125, 0.125 * (1 - C38), 0.125 * (1 - C4), 0.125 * (1 - C8),
    ]  # fmt: skip
    assert lrs == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_after_a_per_step_warmup_with_final_ratio(tmp_path):
    # S = 2, E = 4, W = 3 warmup steps from 0.25: the main clock t = k - 3 runs over T = 5 steps in
    # cycles of 2 steps (P = 1, m = 1); r = 0.5: a cycle goes 1, 0.5 + 0.25 * (1 + cos(pi/2)) = 0.75.
    lrs = _lrs(
        tmp_path,
        2,
        max_epochs=4,
        restart_period_epochs=1,
        cosine_final_lr_ratio=0.5,
        lr_warmup_steps=3,
        warmup_initial_lr=0.25,
    )
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0, 0.75, 1.0, 0.75, 1.0], rel=1e-12)


def _restart_epochs(tmp_path, num_batches, **params):
    import schedulers
    from schedulers import build_lr_callbacks
    from trainer.builders import build_optimizer
    from trainer.params import resolve_training_params

    settings = resolve_training_params(
        base_params(initial_lr=1.0, **params), extra_known_keys=schedulers.lr_param_names
    )
    net = tiny_mlp()
    optimizer = build_optimizer(net, settings)
    callbacks = build_lr_callbacks(
        settings, net, optimizer, num_batches, schedulers.steps_per_epoch(num_batches, None, 1)
    )
    return [
        epoch for callback in callbacks if hasattr(callback, "restart_epochs") for epoch in callback.restart_epochs()
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # P = 1, m = 2, 7 epochs: cycles end after epochs 1 and 3; the third ends with the run.
        ({"max_epochs": 7, "restart_period_epochs": 1, "restart_period_mult": 2}, [1, 3]),
        # P = 10, m = 2 over 150 epochs: the lesson's 10, 30, 70 (150 is the run's end).
        ({"max_epochs": 150, "restart_period_epochs": 10, "restart_period_mult": 2}, [10, 30, 70]),
        # 2 warmup epochs shift the cycles: 2 + 3, 2 + 6.
        ({"max_epochs": 11, "restart_period_epochs": 3, "lr_warmup_epochs": 2}, [5, 8]),
        # 3 warmup steps (S = 2): cycles end at global steps 4 and 6, in epochs 3 and 4 (the last, mid-epoch).
        ({"max_epochs": 4, "restart_period_epochs": 1, "lr_warmup_steps": 3}, [3, 4]),
        # One cycle longer than the run: no restart.
        ({"max_epochs": 5, "restart_period_epochs": 5}, []),
    ],
)
def test_restart_epochs(tmp_path, params, expected):
    assert _restart_epochs(tmp_path, 2, lr_mode="CosineWarmRestartsLRScheduler", **params) == expected


@pytest.mark.parametrize(
    ("scheduler", "num_batches", "max_epochs", "extra", "expected"),
    [
        # Stepped per epoch: T_0 = 10, T_mult = 2 ends cycles after epochs 10, 30, 70 (150 ends the run).
        ({"T_0": 10, "T_mult": 2}, 1, 150, {}, [10, 30, 70]),
        # 2 warmup epochs: stepped after epochs 3, 4, ... (from 1); counts 3 and 6 are reached after 5 and 8.
        ({"T_0": 3}, 1, 10, {"lr_warmup_epochs": 2}, [5, 8]),
        # At VALIDATION_EPOCH_END with run_validation_freq 2: stepped after epochs 2, 4, 6, 8, 10 (from 1);
        # counts 2 and 4 are reached after epochs 4 and 8.
        ({"T_0": 2, "phase": "VALIDATION_EPOCH_END"}, 1, 10, {"run_validation_freq": 2}, [4, 8]),
        # Per step, S = 3: counts 4, 12, 28 end with steps 3, 11, 27: epochs 2, 4, 10 (from 1).
        ({"T_0": 4, "T_mult": 2, "phase": "TRAIN_BATCH_STEP"}, 3, 12, {}, [2, 4, 10]),
        # Per step, cycles of exactly 2 epochs (S = 3, T_0 = 6): epochs 2, 4 (6 ends the run).
        ({"T_0": 6, "phase": "TRAIN_BATCH_STEP"}, 3, 6, {}, [2, 4]),
        # Per step after 2 warmup steps (S = 3): counts 6, 12 end with global steps 7, 13: epochs 3, 5.
        ({"T_0": 6, "phase": "TRAIN_BATCH_STEP"}, 3, 6, {"lr_warmup_steps": 2}, [3, 5]),
    ],
)
def test_torch_warm_restarts_restart_epochs(tmp_path, scheduler, num_batches, max_epochs, extra, expected):
    lr_mode = {"CosineAnnealingWarmRestarts": scheduler}
    assert _restart_epochs(tmp_path, num_batches, lr_mode=lr_mode, max_epochs=max_epochs, **extra) == expected


def test_torch_restart_epochs_match_the_lr_jumps(tmp_path):
    """The restart epochs are where the torch scheduler's LR really jumps up (per step, S = 3)."""
    recorder = LRRecorder()
    lr_mode = {"CosineAnnealingWarmRestarts": {"T_0": 4, "T_mult": 2, "phase": "TRAIN_BATCH_STEP"}}
    settings = base_params(initial_lr=1.0, lr_mode=lr_mode, max_epochs=12, save_model=False, phase_callbacks=[recorder])
    Trainer("torch_warm", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), settings, tiny_loader(3))
    jumps = [k for k in range(1, len(recorder.lrs)) if recorder.lrs[k] > recorder.lrs[k - 1]]
    assert jumps == [4, 12, 28]
    assert [(k - 1) // 3 + 1 for k in jumps] == _restart_epochs(tmp_path, 3, lr_mode=lr_mode, max_epochs=12)


def test_bad_restart_params(tmp_path):
    with pytest.raises(
        ValueError, match=r"CosineWarmRestartsLRScheduler: needs the training param 'restart_period_epochs'"
    ):
        _lrs(tmp_path, 2, max_epochs=2)
    with pytest.raises(ValueError, match=r"'restart_lr_decay' must be in \(0, 1\], got 1.5"):
        _lrs(tmp_path, 2, max_epochs=2, restart_period_epochs=1, restart_lr_decay=1.5)
    with pytest.raises(TypeError, match=r"'restart_period_mult' must be an int, got float 1.5"):
        _lrs(tmp_path, 2, max_epochs=2, restart_period_epochs=1, restart_period_mult=1.5)
