"""Every LR-related configuration error: raised by Trainer.train before the first batch, with a clear message."""

from __future__ import annotations

import pytest

from callbacks import Callback
from registry import LR_SCHEDULERS, register_lr_scheduler
from schedulers import LRCallbackBase
from trainer import Trainer


class BatchCounter(Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_start(self, context) -> None:
        self.batches += 1


def train_raises(make_model, make_loader, tmp_path, error, match, **params):
    """Train with ``params`` and check that ``error`` matching ``match`` is raised before any batch."""
    counter = BatchCounter()
    training_params = {
        "max_epochs": 6,
        "initial_lr": 0.1,
        "loss": "CrossEntropyLoss",
        "silent_mode": True,
        "save_model": False,
        "phase_callbacks": [counter],
        **params,
    }
    with pytest.raises(error, match=match):
        Trainer("errors", ckpt_root_dir=str(tmp_path)).train(
            make_model(), training_params, make_loader(10, batch_size=2)
        )
    assert counter.batches == 0


CASES = {
    "unknown lr_mode": (
        ValueError,
        r"key 'lr_mode': unknown name 'CosineLRSchedular'.*StepLRScheduler.*Did you mean 'CosineLRScheduler'",
        {"lr_mode": "CosineLRSchedular"},
    ),
    "torch scheduler as a string": (
        ValueError,
        r"'StepLR' is a torch scheduler: give it as a mapping",
        {"lr_mode": "StepLR"},
    ),
    "lr_mode of a wrong type": (TypeError, r"key 'lr_mode': must be a registered name.*got int 3", {"lr_mode": 3}),
    "unknown warmup_mode": (
        ValueError,
        r"key 'warmup_mode': unknown name 'LinearEpochWarmup'.*Did you mean 'LinearEpochLRWarmup'",
        {"warmup_mode": "LinearEpochWarmup", "lr_warmup_epochs": 1},
    ),
    "epoch warmup given steps": (
        ValueError,
        r"'LinearEpochLRWarmup' warms up over 'lr_warmup_epochs', but 'lr_warmup_steps' is 5",
        {"warmup_mode": "LinearEpochLRWarmup", "lr_warmup_steps": 5},
    ),
    "batch warmup given epochs": (
        ValueError,
        r"'LinearBatchLRWarmup' warms up over 'lr_warmup_steps', but 'lr_warmup_epochs' is 2",
        {"warmup_mode": "LinearBatchLRWarmup", "lr_warmup_epochs": 2},
    ),
    "both warmup lengths": (
        ValueError,
        r"set either 'lr_warmup_epochs' or 'lr_warmup_steps', not both",
        {"lr_warmup_epochs": 1, "lr_warmup_steps": 5},
    ),
    "step without factor": (
        ValueError,
        r"StepLRScheduler: needs the training param 'lr_decay_factor'",
        {"lr_mode": "StepLRScheduler", "lr_updates": [2]},
    ),
    "step without updates": (
        ValueError,
        r"StepLRScheduler: needs the training param 'lr_updates'.*or 'step_lr_update_freq'",
        {"lr_mode": "StepLRScheduler", "lr_decay_factor": 0.1},
    ),
    "step with both updates and freq": (
        ValueError,
        r"either 'lr_updates' \(\[2\]\) or 'step_lr_update_freq' \(2\), not both",
        {"lr_mode": "StepLRScheduler", "lr_decay_factor": 0.1, "lr_updates": [2], "step_lr_update_freq": 2},
    ),
    "step factor zero": (
        ValueError,
        r"'lr_decay_factor' must be > 0, got 0",
        {"lr_mode": "StepLRScheduler", "lr_decay_factor": 0, "lr_updates": [2]},
    ),
    "step factor negative": (
        ValueError,
        r"'lr_decay_factor' must be > 0, got -0.5",
        {"lr_mode": "StepLRScheduler", "lr_decay_factor": -0.5, "lr_updates": [2]},
    ),
    "step factor a string": (
        TypeError,
        r"'lr_decay_factor' must be a number, got str '0.1'",
        {"lr_mode": "StepLRScheduler", "lr_decay_factor": "0.1", "lr_updates": [2]},
    ),
    "step updates not ints": (
        TypeError,
        r"'lr_updates' must be a list of epoch indices \(int\), got \[2.5\]",
        {"lr_mode": "StepLRScheduler", "lr_decay_factor": 0.1, "lr_updates": [2.5]},
    ),
    "step freq zero": (
        ValueError,
        r"'step_lr_update_freq' must be >= 1, got 0",
        {"lr_mode": "StepLRScheduler", "lr_decay_factor": 0.1, "step_lr_update_freq": 0},
    ),
    "exponential without factor": (
        ValueError,
        r"ExponentialLRScheduler: needs the training param 'lr_decay_factor'",
        {"lr_mode": "ExponentialLRScheduler"},
    ),
    "exponential factor zero": (
        ValueError,
        r"ExponentialLRScheduler: training param 'lr_decay_factor' must be > 0, got 0.0",
        {"lr_mode": "ExponentialLRScheduler", "lr_decay_factor": 0.0},
    ),
    "cosine ratio above 1": (
        ValueError,
        r"'cosine_final_lr_ratio' must be in \[0, 1\], got 1.5",
        {"lr_mode": "CosineLRScheduler", "cosine_final_lr_ratio": 1.5},
    ),
    "cosine ratio below 0": (
        ValueError,
        r"'cosine_final_lr_ratio' must be in \[0, 1\], got -0.1",
        {"lr_mode": "CosineLRScheduler", "cosine_final_lr_ratio": -0.1},
    ),
    "poly power zero": (
        ValueError,
        r"'poly_power' must be > 0, got 0",
        {"lr_mode": "PolyLRScheduler", "poly_power": 0},
    ),
    "warmup plus cooldown fill the run": (
        ValueError,
        r"warmup plus cooldown must be shorter than training: warmup W = 30 steps.*cooldown C = 30 steps.*>= N = 60 steps",
        {"lr_mode": "CosineLRScheduler", "lr_warmup_epochs": 3, "lr_cooldown_epochs": 3},
    ),
    "cooldown fills the run": (
        ValueError,
        r"warmup plus cooldown must be shorter than training.*lr_cooldown_epochs=6",
        {"lr_mode": "PolyLRScheduler", "lr_cooldown_epochs": 6},
    ),
    "step warmup as long as the run": (ValueError, r"warmup W = 60 steps.*lr_warmup_steps=60", {"lr_warmup_steps": 60}),
    "function missing": (
        ValueError,
        r"FunctionLRScheduler: needs the training param 'lr_schedule_function'",
        {"lr_mode": "FunctionLRScheduler"},
    ),
    "function not callable": (
        TypeError,
        r"'lr_schedule_function': 5 is not callable",
        {"lr_mode": "FunctionLRScheduler", "lr_schedule_function": 5},
    ),
    "function module missing": (
        ValueError,
        r"'lr_schedule_function': cannot import module 'no_such_module'",
        {"lr_mode": "FunctionLRScheduler", "lr_schedule_function": "no_such_module:schedule"},
    ),
    "function attribute missing": (
        ValueError,
        r"module 'math' has no attribute 'no_such_function'",
        {"lr_mode": "FunctionLRScheduler", "lr_schedule_function": "math:no_such_function"},
    ),
    "function path malformed": (
        ValueError,
        r"'math.cos' is not an import path; expected 'package.module:name'",
        {"lr_mode": "FunctionLRScheduler", "lr_schedule_function": "math.cos"},
    ),
    "function path names a constant": (
        TypeError,
        r"'math:pi' is not callable",
        {"lr_mode": "FunctionLRScheduler", "lr_schedule_function": "math:pi"},
    ),
    "initial_lr mapping without default": (
        ValueError,
        r"the initial_lr mapping \{'2': 0.1\} needs a 'default' entry",
        {"initial_lr": {"2": 0.1}},
    ),
    "initial_lr prefix matching nothing": (
        ValueError,
        r"initial_lr prefix 'head' matches no parameter of the net",
        {"initial_lr": {"head": 0.1, "default": 0.1}},
    ),
    "warmup_initial_lr mapping missing a group": (
        ValueError,
        r"warmup_initial_lr \{'2': 0.01\} must have one entry per param group \['2', 'default'\].*missing \['default'\]",
        {"initial_lr": {"2": 0.1, "default": 0.1}, "lr_warmup_epochs": 1, "warmup_initial_lr": {"2": 0.01}},
    ),
    "warmup_initial_lr mapping with an unknown group": (
        ValueError,
        r"unknown \['defualt'\]. Did you mean 'default'",
        {"lr_warmup_epochs": 1, "warmup_initial_lr": {"defualt": 0.01}},
    ),
    "warmup_initial_lr negative": (
        ValueError,
        r"warmup_initial_lr must be >= 0, got -0.01",
        {"lr_warmup_epochs": 1, "warmup_initial_lr": -0.01},
    ),
    "warmup_initial_lr a string": (
        TypeError,
        r"warmup_initial_lr\['default'\] must be a number >= 0 or a mapping",
        {"lr_warmup_epochs": 1, "warmup_initial_lr": {"default": "0.01"}},
    ),
    "misspelled schedule key": (
        ValueError,
        r"unknown key 'cosine_final_lr_ratoi'.*Did you mean 'cosine_final_lr_ratio'",
        {"lr_mode": "CosineLRScheduler", "cosine_final_lr_ratoi": 0.1},
    ),
    "key of another schedule": (
        ValueError,
        r"unknown key 'poly_power': it is neither a training param nor a parameter of the chosen lr_mode",
        {"lr_mode": "CosineLRScheduler", "poly_power": 0.9},
    ),
    "schedule key without lr_mode": (ValueError, r"unknown key 'lr_updates'", {"lr_updates": [2]}),
}


@pytest.mark.parametrize(("error", "match", "params"), list(CASES.values()), ids=list(CASES))
def test_lr_configuration_error(make_model, make_loader, tmp_path, error, match, params):
    train_raises(make_model, make_loader, tmp_path, error, match, **params)


class NeedsItsKey(LRCallbackBase):
    def __init__(self, my_required_key: float, **kwargs):
        super().__init__("TRAIN_EPOCH_START", **kwargs)


class NotACallback:
    def __init__(self, **kwargs):
        pass


def test_user_schedule_without_its_required_key(make_model, make_loader, tmp_path):
    if "needs_its_key" not in LR_SCHEDULERS:
        register_lr_scheduler("needs_its_key")(NeedsItsKey)
    train_raises(
        make_model,
        make_loader,
        tmp_path,
        ValueError,
        r"'needs_its_key' \(.*NeedsItsKey\) needs the training param 'my_required_key', which is not set",
        lr_mode="needs_its_key",
    )


def test_lr_mode_registered_to_something_else_than_an_lr_callback(make_model, make_loader, tmp_path):
    if "not_a_callback" not in LR_SCHEDULERS:
        register_lr_scheduler("not_a_callback")(NotACallback)
    train_raises(
        make_model,
        make_loader,
        tmp_path,
        TypeError,
        r"'not_a_callback' is registered to .*NotACallback.*, which is not an LRCallbackBase subclass",
        lr_mode="not_a_callback",
    )
