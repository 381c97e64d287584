"""Exact resume for every kind of schedule.

A 6-epoch run stopped after epoch 3 and resumed with ``resume=True`` gives the same LR at every
optimizer step and bitwise-identical final weights as the uninterrupted run, for every built-in
schedule (with and without epoch warmup, step warmup, cooldown) and every wrapped torch scheduler.
The resume must not warn that the LR changed, and every checkpoint loads with weights_only=True.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from tiny_fixtures import tiny_dataset, tiny_mlp
from torch.utils.data import DataLoader

from callbacks import Callback
from trainer import Trainer

EPOCHS = 6
STOP_AFTER = 3  # epochs of the first, interrupted run
BATCH_SIZE = 8  # 40 samples: 5 optimizer steps per epoch


def linear_decay(initial_lr, epoch, iter, max_epoch, iters_per_epoch):  # noqa: A002 (SuperGradients' keyword)
    """An lr_schedule_function named by import path."""
    return initial_lr * (1 - (epoch * iters_per_epoch + iter) / (max_epoch * iters_per_epoch + 1))


def lambda_decay(epoch: int) -> float:
    """An lr_lambda named by import path."""
    return 0.7**epoch


BUILTINS = {
    "StepLRScheduler": {"lr_mode": "StepLRScheduler", "lr_updates": [1, 3], "lr_decay_factor": 0.5},
    "CosineLRScheduler": {"lr_mode": "CosineLRScheduler", "cosine_final_lr_ratio": 0.1},
    "PolyLRScheduler": {"lr_mode": "PolyLRScheduler", "poly_power": 0.9},
    "ExponentialLRScheduler": {"lr_mode": "ExponentialLRScheduler", "lr_decay_factor": 0.8},
    "FunctionLRScheduler": {
        "lr_mode": "FunctionLRScheduler",
        "lr_schedule_function": "test_resume_matrix:linear_decay",
    },
}
VARIANTS = {
    "plain": {},
    "epoch warmup": {"lr_warmup_epochs": 2, "warmup_initial_lr": 0.01},
    "step warmup": {"lr_warmup_steps": 7},
    "cooldown": {"lr_cooldown_epochs": 1},
}
TORCH = {
    "OneCycleLR": {"lr_mode": {"OneCycleLR": {"max_lr": 0.3, "total_steps": "auto"}}},
    "CosineAnnealingLR per step": {"lr_mode": {"CosineAnnealingLR": {"T_max": "auto", "phase": "TRAIN_BATCH_STEP"}}},
    "CyclicLR": {
        "lr_mode": {"CyclicLR": {"base_lr": 0.01, "max_lr": 0.2, "step_size_up": 4, "mode": "exp_range", "gamma": 0.9}}
    },
    "StepLR": {"lr_mode": {"StepLR": {"step_size": 2, "gamma": 0.5}}},
    "SequentialLR": {
        "lr_mode": {
            "SequentialLR": {
                "schedulers": [
                    {"LinearLR": {"start_factor": 0.2, "total_iters": 6}},
                    {"CosineAnnealingLR": {"T_max": "auto"}},
                ],
                "milestones": [6],
                "phase": "TRAIN_BATCH_END",
            }
        }
    },
    "ChainedScheduler": {
        "lr_mode": {
            "ChainedScheduler": {"schedulers": [{"LinearLR": {"total_iters": 3}}, {"ExponentialLR": {"gamma": 0.8}}]}
        }
    },
    "LambdaLR": {"lr_mode": {"LambdaLR": {"lr_lambda": "test_resume_matrix:lambda_decay"}}},
    "ReduceLROnPlateau train loss": {
        "lr_mode": {"ReduceLROnPlateau": {"metric_name": "loss", "patience": 0, "factor": 0.5, "threshold": 0.9}}
    },
    "ReduceLROnPlateau valid accuracy": {
        "lr_mode": {
            "ReduceLROnPlateau": {
                "metric_name": "Accuracy",
                "mode": "max",
                "patience": 0,
                "threshold": 0.9,
                "phase": "VALIDATION_EPOCH_END",
            }
        }
    },
    "CosineAnnealingWarmRestarts": {
        "lr_mode": {"CosineAnnealingWarmRestarts": {"T_0": 4, "T_mult": 2, "phase": "TRAIN_BATCH_STEP"}}
    },
    "OneCycleLR after step warmup": {
        "lr_mode": {"OneCycleLR": {"max_lr": 0.3, "total_steps": "auto"}},
        "lr_warmup_steps": 7,
    },
    "LinearLR after epoch warmup ending at the resume": {
        "lr_mode": {"LinearLR": {"start_factor": 0.25, "total_iters": 2}},
        "lr_warmup_epochs": STOP_AFTER,
    },
    "CosineAnnealingLR with cooldown": {
        "lr_mode": {"CosineAnnealingLR": {"T_max": "auto", "phase": "TRAIN_BATCH_STEP"}},
        "lr_cooldown_epochs": 1,
    },
}
CASES = {
    f"{name} {variant}": {**params, **extra} for name, params in BUILTINS.items() for variant, extra in VARIANTS.items()
}
CASES.update(TORCH)


class StepLog(Callback):
    """Records {global step: LR of each group} right before each optimizer step; stops after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None):
        self.lrs: dict[int, tuple[float, ...]] = {}
        self.stop_after = stop_after

    def on_train_batch_gradient_step_start(self, context):
        self.lrs[context.global_step] = tuple(group["lr"] for group in context.optimizer.param_groups)

    def on_train_loader_end(self, context):
        if self.stop_after is not None and context.epoch + 1 == self.stop_after:
            context.stop_training = True


def run(tmp_path, name, case, stop_after=None, resume=False):
    log = StepLog(stop_after)
    model = tiny_mlp(seed=1)
    params = {
        "max_epochs": EPOCHS,
        "initial_lr": 0.1,
        "optimizer": "SGD",
        "optimizer_params": {"momentum": 0.9},
        "loss": "CrossEntropyLoss",
        "valid_metrics_list": [{"Accuracy": {"task": "multiclass", "num_classes": 3}}],
        "silent_mode": True,
        "phase_callbacks": [log],
        "resume": resume,
        **case,
    }
    train_loader = DataLoader(tiny_dataset(40, seed=2), batch_size=BATCH_SIZE, shuffle=True)
    valid_loader = DataLoader(tiny_dataset(16, seed=3), batch_size=BATCH_SIZE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Trainer(name, ckpt_root_dir=str(tmp_path)).train(model, params, train_loader, valid_loader)
    resume_warnings = [str(w.message) for w in caught if str(w.message).startswith("resume:")]
    assert resume_warnings == []
    return log.lrs, model, result


@pytest.mark.parametrize("case", list(CASES))
def test_stopped_and_resumed_run_equals_the_uninterrupted_one(tmp_path, case):
    full_lrs, full_model, _ = run(tmp_path, "full", CASES[case])
    first_lrs, _, first = run(tmp_path, "parts", CASES[case], stop_after=STOP_AFTER)
    assert first.next_epoch == STOP_AFTER
    checkpoint = torch.load(f"{first.ckpt_dir}/ckpt_latest.pth", weights_only=True)
    if isinstance(CASES[case]["lr_mode"], dict):
        assert checkpoint["torch_scheduler_state_dict"]["scheduler"].startswith(next(iter(CASES[case]["lr_mode"])))
    resumed_lrs, resumed_model, resumed = run(tmp_path, "parts", CASES[case], resume=True)
    assert resumed.epochs_run == EPOCHS - STOP_AFTER
    assert min(resumed_lrs) == max(first_lrs) + 1
    assert {**first_lrs, **resumed_lrs} == full_lrs
    assert len(set(full_lrs.values())) > 2  # the schedule does move
    full_state, resumed_state = full_model.state_dict(), resumed_model.state_dict()
    assert all(torch.equal(full_state[key], resumed_state[key]) for key in full_state)
