"""Every param_scheduler configuration error: raised by Trainer.train before the first batch, with a clear message."""

from __future__ import annotations

import warnings

import pytest
from tiny_fixtures import ScriptedScore

from callbacks import Callback
from trainer import Trainer


class BatchCounter(Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_start(self, context) -> None:
        self.batches += 1


def train(make_model, make_loader, tmp_path, validate=False, **params):
    counter = BatchCounter()
    training_params = {
        "max_epochs": 6,
        "initial_lr": 0.1,
        "optimizer_params": {"momentum": 0.9, "weight_decay": 1e-4},
        "loss": "CrossEntropyLoss",
        "silent_mode": True,
        "save_model": False,
        "log_steps": False,
        "tensorboard": False,
        "phase_callbacks": [counter],
        **params,
    }
    valid_loader = make_loader(1, batch_size=2, seed=1) if validate else None
    Trainer("errors", ckpt_root_dir=str(tmp_path)).train(
        make_model(), training_params, make_loader(2, batch_size=2), valid_loader
    )
    return counter


CASES = {
    "unknown class": (
        ValueError,
        r"key 'param_scheduler'\[0\]: unknown name 'CosineAnealingLR'\. Valid names: .*LinearLR.*"
        r"Did you mean 'CosineAnnealingLR'",
        {"param_scheduler": [{"type": "CosineAnealingLR"}]},
    ),
    "unknown class in the mapping form": (
        ValueError,
        r"\[1\]: unknown name 'LinearMomentun'.*Did you mean 'LinearMomentum'",
        {"param_scheduler": [{"LinearLR": {"end": 2}}, {"LinearMomentun": {}}]},
    ),
    "unknown argument": (
        ValueError,
        r"\[0\] CosineAnnealingLR: unknown argument 'T_maxx'; CosineAnnealingLR accepts T_max, begin, by_epoch, "
        r"convert_to_iter_based, end, eta_min, eta_min_ratio, verbose\. Did you mean 'T_max'",
        {"param_scheduler": [{"type": "CosineAnnealingLR", "T_maxx": 3}]},
    ),
    "param_name the groups lack": (
        ValueError,
        r"param_name 'weight_decy' is not a number-valued key of param group 0 of SGD; the groups have "
        r"\[.*'lr', 'momentum'.*'weight_decay'\]\. Did you mean 'weight_decay'",
        {"param_scheduler": [{"type": "LinearParamScheduler", "param_name": "weight_decy"}]},
    ),
    "generic class without param_name": (
        ValueError,
        r"\[0\] StepParamScheduler: needs the argument 'step_size'",
        {"param_scheduler": [{"StepParamScheduler": {"param_name": "lr"}}]},
    ),
    "momentum schedule without momentum or betas": (
        ValueError,
        r"a momentum schedule needs an optimizer with 'momentum' \(SGD, RMSprop\) or 'betas' \(Adam family\); "
        r"Adagrad has neither",
        {"optimizer": "Adagrad", "optimizer_params": {}, "param_scheduler": [{"type": "LinearMomentum"}]},
    ),
    "begin equal to end": (
        ValueError,
        r"\[0\] LinearLR: begin must be smaller than end \(the segment acts in \[begin, end\)\), got begin=5, end=5",
        {"param_scheduler": [{"type": "LinearLR", "begin": 5, "end": 5}]},
    ),
    "begin at the default end": (
        ValueError,
        r"LinearLR: begin must be smaller than end .*got begin=6, end=6 \(epochs; end defaults to the end of training\)",
        {"param_scheduler": [{"type": "LinearLR", "begin": 6}]},
    ),
    "convert_to_iter_based on an iteration segment": (
        ValueError,
        r"\[0\] CosineAnnealingLR: convert_to_iter_based converts an epoch segment \(by_epoch: true\).*already "
        r"counts optimizer steps",
        {"param_scheduler": [{"type": "CosineAnnealingLR", "by_epoch": False, "convert_to_iter_based": True}]},
    ),
    "lr_mode and an lr segment": (
        ValueError,
        r"key 'lr_mode' \('CosineLRScheduler'\) and key 'param_scheduler' \(entry 1, CosineAnnealingLR\) both "
        r"schedule the learning rate",
        {
            "lr_mode": "CosineLRScheduler",
            "param_scheduler": [{"type": "LinearMomentum"}, {"type": "CosineAnnealingLR"}],
        },
    ),
    "a warmup key and an lr segment": (
        ValueError,
        r"key 'lr_warmup_steps' \(3\) and key 'param_scheduler' \(entry 0, LinearParamScheduler\) both schedule",
        {"lr_warmup_steps": 3, "param_scheduler": [{"type": "LinearParamScheduler", "param_name": "lr"}]},
    ),
    "an entry of the wrong form": (
        TypeError,
        r"key 'param_scheduler'\[0\]: each entry must be MMEngine's \{type: ClassName, \.\.\.\} or "
        r"\{ClassName: \{\.\.\.\}\}, got str 'CosineAnnealingLR'",
        {"param_scheduler": ["CosineAnnealingLR"]},
    ),
    "one-cycle for momentum": (
        ValueError,
        r"OneCycleParamScheduler: OneCycle schedules only 'lr' \(as in MMEngine\), got param_name 'momentum'",
        {"param_scheduler": [{"type": "OneCycleParamScheduler", "param_name": "momentum", "eta_max": 0.9}]},
    ),
    "a factor out of range": (
        ValueError,
        r"\[0\] ConstantLR: factor must be in \(0, 1\], got 0",
        {"param_scheduler": [{"type": "ConstantLR", "factor": 0}]},
    ),
    "a plateau without validation": (
        ValueError,
        r"ReduceOnPlateauLR: a plateau schedule steps after each validation, but there is no valid_loader",
        {"param_scheduler": [{"type": "ReduceOnPlateauLR", "monitor": "loss"}]},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_param_scheduler_raises_before_the_first_batch(name, make_model, make_loader, tmp_path):
    error, match, params = CASES[name]
    counter = BatchCounter()
    with pytest.raises(error, match=match):
        train(make_model, make_loader, tmp_path, phase_callbacks=[counter], **params)
    assert counter.batches == 0


def test_a_missing_monitor_metric_lists_the_validation_metrics(make_model, make_loader, tmp_path):
    counter = BatchCounter()
    schedule = [{"type": "ReduceOnPlateauLR", "monitor": "acuracy", "rule": "greater"}]
    with pytest.raises(
        ValueError,
        match=r"\[0\] ReduceOnPlateauLR: monitor 'acuracy' is not a validation metric; the validation metrics are "
        r"\['loss', 'accuracy'\]\. Did you mean 'accuracy'",
    ):
        train(
            make_model,
            make_loader,
            tmp_path,
            validate=True,
            phase_callbacks=[counter],
            valid_metrics_list=[{"accuracy": ScriptedScore([0.5] * 6)}],
            param_scheduler=schedule,
        )
    assert counter.batches == 0


def test_a_segment_that_starts_after_training_ends_warns(make_model, make_loader, tmp_path):
    schedule = [{"type": "StepLR", "step_size": 1, "begin": 8, "end": 10}]
    with pytest.warns(UserWarning, match=r"\[0\] StepLR: begins at epoch 8, but training ends after 6 epochs"):
        train(make_model, make_loader, tmp_path, param_scheduler=schedule)


def test_lr_mode_with_a_momentum_and_weight_decay_schedule_is_fine(make_model, make_loader, tmp_path):
    schedule = [
        {"type": "LinearMomentum", "start_factor": 0.5},
        {"type": "StepParamScheduler", "param_name": "weight_decay", "step_size": 2},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        counter = train(make_model, make_loader, tmp_path, lr_mode="CosineLRScheduler", param_scheduler=schedule)
    assert counter.batches == 12


def test_a_one_cycle_shorter_than_its_segment_is_an_error(make_model, make_loader, tmp_path):
    # 6 epochs x 2 steps: positions 0-11; MMEngine computes position total_steps (the value rises again) and
    # fails after it, so total_steps=11 runs and 10 does not.
    cycle = {"type": "OneCycleLR", "eta_max": 0.1, "by_epoch": False}
    train(make_model, make_loader, tmp_path, param_scheduler=[{**cycle, "total_steps": 11}])
    with pytest.raises(
        ValueError,
        match=r"OneCycleLR: total_steps=10 is too small: the segment \(begin=0, end=12\) reaches position 11 in this "
        r"run, and MMEngine fails past position 10 \('Tried to step 12 times'\)",
    ):
        train(make_model, make_loader, tmp_path, param_scheduler=[{**cycle, "total_steps": 10}])
