"""Every user-facing error of the torch-scheduler lr_mode, and the resume checks and warnings."""

from __future__ import annotations

import warnings

import pytest
from tiny_fixtures import base_params, tiny_loader, tiny_mlp
from torch.optim import lr_scheduler

from registry import register_lr_scheduler
from trainer import Trainer


@register_lr_scheduler
class HalvingLR(lr_scheduler.LRScheduler):
    """A user scheduler: halves the LR at every step."""

    def get_lr(self):
        return [base_lr * 0.5**self.last_epoch for base_lr in self.base_lrs]


@register_lr_scheduler
class OpaqueStateLR(lr_scheduler.StepLR):
    """A user scheduler whose state holds an object a weights_only checkpoint cannot load."""

    def __init__(self, optimizer, step_size=1):
        self.helper = object()
        super().__init__(optimizer, step_size)


def train(tmp_path, lr_mode, name="run", valid_loader=None, **overrides):
    params = base_params(**{"max_epochs": 2, "lr_mode": lr_mode, "optimizer_params": {"momentum": 0.9}, **overrides})
    return Trainer(name, ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(2), valid_loader)


@pytest.mark.parametrize(
    ("lr_mode", "error", "match"),
    [
        ({"StepLr": {"step_size": 1}}, ValueError, r"unknown torch scheduler 'StepLr'.*Did you mean 'StepLR'\?"),
        (
            {"Nope": {}},
            ValueError,
            r"torch.optim.lr_scheduler classes: .*OneCycleLR.*Registered with @register_lr_scheduler: .*HalvingLR",
        ),
        (
            {"StepLR": {"step_size": 1, "gama": 0.5}},
            ValueError,
            r"StepLR has no parameter 'gama'. Did you mean 'gamma'\? Accepted parameters: step_size, gamma, last_epoch",
        ),
        ({"StepLR": {"gamma": 0.5}}, ValueError, r"StepLR needs step_size"),
        (
            {"StepLR": {"step_size": 1, "phase": "TRAIN_EPOCH_ENDS"}},
            ValueError,
            r"StepLR phase: unknown name 'TRAIN_EPOCH_ENDS'. Valid names: .*Did you mean 'TRAIN_EPOCH_END'\?",
        ),
        (
            {"StepLR": {"step_size": 1, "phase": "TRAIN_BATCH_START"}},
            ValueError,
            r"phase TRAIN_BATCH_START cannot step a scheduler; valid phases: TRAIN_BATCH_STEP, TRAIN_BATCH_END, TRAIN_EPOCH_END, VALIDATION_EPOCH_END",
        ),
        ({"StepLR": {"step_size": 1, "phase": 3}}, TypeError, r"expected a Phase or a phase name string, got int 3"),
        ({"ReduceLROnPlateau": {"patience": 0}}, ValueError, r"ReduceLROnPlateau needs metric_name"),
        (
            {"ReduceLROnPlateau": {"metric_name": "loss", "phase": "TRAIN_BATCH_STEP"}},
            ValueError,
            r"ReduceLROnPlateau steps on an epoch metric; phase must be one of TRAIN_EPOCH_END, VALIDATION_EPOCH_END",
        ),
        ({"StepLR": {"step_size": 1, "metric_name": "loss"}}, ValueError, r"metric_name is only for ReduceLROnPlateau"),
        (
            {"SequentialLR": {"schedulers": [{"LinearLR": {}}, {"ReduceLROnPlateau": {}}], "milestones": [1]}},
            ValueError,
            r"SequentialLR schedulers\[1\]: ReduceLROnPlateau cannot be nested in SequentialLR",
        ),
        (
            {"SequentialLR": {"schedulers": [{"LinearLR": {}}, {"StepLR": {"step_size": 1}}], "milestones": []}},
            ValueError,
            r"milestones must be a list of 1 increasing step counts",
        ),
        (
            {"ChainedScheduler": {"schedulers": [{"LinearLR": {"phase": "TRAIN_BATCH_STEP"}}]}},
            ValueError,
            r"'phase' belongs to the outer ChainedScheduler",
        ),
        (
            {"OneCycleLR": {"max_lr": 0.1, "total_steps": 3}},
            ValueError,
            r"OneCycleLR total_steps=3 is smaller than the 4 steps it takes in this run; torch would fail at step 4",
        ),
        (
            {"OneCycleLR": {"max_lr": 0.1, "epochs": 1, "steps_per_epoch": 2}},
            ValueError,
            r"OneCycleLR total_steps=2 is smaller than the 4 steps",
        ),
        (
            {
                "SequentialLR": {
                    "schedulers": [{"LinearLR": {}}, {"OneCycleLR": {"max_lr": 0.1, "total_steps": 2}}],
                    "milestones": [1],
                    "phase": "TRAIN_BATCH_STEP",
                }
            },
            ValueError,
            r"SequentialLR schedulers\[1\]: OneCycleLR total_steps=2 is smaller than the 3 steps",
        ),
        (
            {"StepLR": {"step_size": "auto"}},
            ValueError,
            r"StepLR: step_size='auto' is not supported; 'auto' is accepted by OneCycleLR.total_steps, CosineAnnealingLR.T_max",
        ),
        (
            {"OneCycleLR": {"max_lr": 0.1, "total_steps": "auto", "pct_start": 2.0}},
            ValueError,
            r"OneCycleLR\(max_lr=0.1, total_steps=4, pct_start=2.0\) rejected its arguments: Expected float between 0 and 1 pct_start",
        ),
        (
            {"LambdaLR": {"lr_lambda": "no_such_module:f"}},
            ValueError,
            r"LambdaLR lr_lambda: cannot import module 'no_such_module'",
        ),
        ({"LambdaLR": {"lr_lambda": "math:pi"}}, TypeError, r"LambdaLR lr_lambda: 'math:pi' is not callable"),
        (
            {"StepLR": {"step_size": 1}, "CosineAnnealingLR": {}},
            ValueError,
            r"exactly one key.*got keys \['StepLR', 'CosineAnnealingLR'\]",
        ),
        ({"StepLR": [1]}, TypeError, r"the arguments of 'StepLR' must be a mapping of keyword arguments"),
        ({"OpaqueStateLR": {}}, TypeError, r"OpaqueStateLR.state_dict\(\)\['helper'\] is a object .*weights_only=True"),
    ],
)
def test_bad_lr_mode_fails_before_training(tmp_path, lr_mode, error, match):
    with pytest.raises(error, match=match):
        train(tmp_path, lr_mode)


def test_builtin_name_given_as_mapping_says_how_to_write_it(tmp_path):
    import schedulers.builtin  # noqa: F401  (registers the built-ins)

    with pytest.raises(ValueError, match=r"'CosineLRScheduler' is a built-in lr_mode: give it as a string"):
        train(tmp_path, {"CosineLRScheduler": {}})


def test_metric_not_available_at_the_phase_lists_the_available_ones(tmp_path):
    lr_mode = {"ReduceLROnPlateau": {"metric_name": "Accuracy"}}
    with pytest.raises(
        ValueError,
        match=r"metric_name 'Accuracy' is not available at TRAIN_EPOCH_END; the train metrics there are \['loss'\]",
    ):
        train(
            tmp_path,
            lr_mode,
            valid_loader=tiny_loader(1),
            valid_metrics_list=[{"Accuracy": {"task": "multiclass", "num_classes": 3}}],
        )
    lr_mode = {"ReduceLROnPlateau": {"metric_name": "acc", "phase": "VALIDATION_EPOCH_END"}}
    with pytest.raises(ValueError, match=r"validation metrics there are \['loss', 'Accuracy'\]"):
        train(
            tmp_path,
            lr_mode,
            valid_loader=tiny_loader(1),
            valid_metrics_list=[{"Accuracy": {"task": "multiclass", "num_classes": 3}}],
        )


def test_validation_phase_without_valid_loader(tmp_path):
    with pytest.raises(ValueError, match=r"phase VALIDATION_EPOCH_END never fires without a valid_loader"):
        train(tmp_path, {"StepLR": {"step_size": 1, "phase": "VALIDATION_EPOCH_END"}})


def test_registered_user_scheduler_runs(tmp_path):
    result = train(tmp_path, {"HalvingLR": {"phase": "TRAIN_BATCH_STEP"}})
    assert result.global_step == 4


# ---------------------------------------------------------------------- resume


def resume(tmp_path, lr_mode, **overrides):
    return train(tmp_path, lr_mode, resume=True, **{"max_epochs": 3, **overrides})


@pytest.mark.parametrize(
    ("saved", "current", "match"),
    [
        (
            {"StepLR": {"step_size": 1}},
            {"CosineAnnealingLR": {"T_max": "auto"}},
            r"holds the state of torch scheduler StepLR stepped at TRAIN_EPOCH_END, but lr_mode is now CosineAnnealingLR stepped at TRAIN_EPOCH_END",
        ),
        (
            {"StepLR": {"step_size": 1}},
            {"StepLR": {"step_size": 1, "phase": "TRAIN_BATCH_STEP"}},
            r"StepLR stepped at TRAIN_EPOCH_END, but lr_mode is now StepLR stepped at TRAIN_BATCH_STEP",
        ),
        (
            {"SequentialLR": {"schedulers": [{"LinearLR": {}}, {"StepLR": {"step_size": 1}}], "milestones": [1]}},
            {"SequentialLR": {"schedulers": [{"LinearLR": {}}, {"ExponentialLR": {"gamma": 0.5}}], "milestones": [1]}},
            r"SequentialLR\(LinearLR, StepLR\) stepped at TRAIN_EPOCH_END, but lr_mode is now SequentialLR\(LinearLR, ExponentialLR\)",
        ),
        (
            None,
            {"StepLR": {"step_size": 1}},
            r"holds no torch scheduler state \(it was trained with lr_mode None\), but lr_mode is now the torch scheduler StepLR",
        ),
        (
            {"StepLR": {"step_size": 1}},
            None,
            r"holds the state of torch scheduler StepLR \(lr_mode \{'StepLR': \{'step_size': 1\}\}\), but the current lr_mode is not a torch-scheduler mapping",
        ),
    ],
)
def test_resume_with_another_scheduler_is_an_error(tmp_path, saved, current, match):
    train(tmp_path, saved)
    with pytest.raises(RuntimeError, match=match):
        resume(tmp_path, current)


def test_resume_cannot_stretch_a_onecycle(tmp_path):
    lr_mode = {"OneCycleLR": {"max_lr": 0.1, "total_steps": "auto"}}
    train(tmp_path, lr_mode)
    with pytest.raises(
        RuntimeError,
        match=r"resume: OneCycleLR restored from .* has total_steps=4, but this run takes 6 steps; .* \(total_steps \(4 -> 6\).*cannot be stretched on resume",
    ):
        resume(tmp_path, lr_mode)


def test_resume_warns_when_the_params_changed_the_scheduler(tmp_path):
    train(tmp_path, {"CosineAnnealingLR": {"T_max": "auto"}})
    with pytest.warns(
        UserWarning,
        match=r"resume: lr_mode CosineAnnealingLR: the scheduler built from the current training params differs from the checkpoint's: T_max \(2 -> 4\). Training params changed since the checkpoint: max_epochs \(2 -> 4\).*continues the checkpoint's schedule",
    ):
        resume(tmp_path, {"CosineAnnealingLR": {"T_max": "auto"}}, max_epochs=4)


def test_resume_warns_on_changed_scheduler_argument(tmp_path):
    train(tmp_path, {"StepLR": {"step_size": 1, "gamma": 0.5}})
    with pytest.warns(
        UserWarning,
        match=r"differs from the checkpoint's: gamma \(0.5 -> 0.1\). Training params changed since the checkpoint: lr_mode \(.*gamma.: 0.5.*gamma.: 0.1.*\), max_epochs \(2 -> 3\)",
    ):
        resume(tmp_path, {"StepLR": {"step_size": 1, "gamma": 0.1}})


def test_resume_with_the_same_params_does_not_warn(tmp_path):
    lr_mode = {"OneCycleLR": {"max_lr": 0.1, "total_steps": 6}}
    train(tmp_path, lr_mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = resume(tmp_path, lr_mode)
    assert result.global_step == 6


def test_resume_warns_when_a_builtin_schedule_would_jump(tmp_path):
    train(tmp_path, "CosineLRScheduler")
    with pytest.warns(
        UserWarning,
        match=r"resume: the LR schedule \(CosineLRScheduler\) built from the current training params gives LR 0.0505 for "
        r"optimizer step 3, but the run that wrote the checkpoint used 0.0154982 for it.*Training params changed since "
        r"the checkpoint: max_epochs \(2 -> 3\)",
    ):
        resume(tmp_path, "CosineLRScheduler")
