"""param_scheduler against MMEngine 0.10.7 itself: every recorded trajectory, through the real Trainer and the preview.

The oracle is tests/schedulers/fixtures/mmengine_trajectories.json (recorded by record_mmengine.py in a
scratch environment with MMEngine installed): for each case, the value of every scheduled key of every
param group at every optimizer step. Each case runs here on a real model, a DataLoader with exactly
``steps_per_epoch`` batches and, for plateau cases, a validation whose monitored metric follows the
recorded values; the values the optimizer applies are read at TRAIN_BATCH_GRADIENT_STEP_START.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_fixtures import ScriptedScore, tiny_loader
from torch import nn

from callbacks import Callback
from trainer import Trainer
from trainer.preview import preview_schedule

FIXTURE = Path(__file__).parent / "fixtures" / "mmengine_trajectories.json"
CASES = json.loads(FIXTURE.read_text())["cases"]

DOCUMENTED_DIFFERENCES: dict[str, dict[str, list[float]]] = {}
"""Cases where MMEngine has a bug phasetrain does not copy (docs/param_schedules.md, "Differences"):
case name -> the exact trajectory phasetrain gives instead. None so far: every recorded case matches."""

RELATIVE = 1e-9


class TwoPartNet(nn.Module):
    """A backbone and a head, so an initial_lr mapping {"backbone": ..., "default": ...} makes two groups."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.backbone = nn.Linear(4, 8)
            self.head = nn.Linear(8, 3)

    def forward(self, inputs):
        return self.head(torch.relu(self.backbone(inputs)))


class ScriptedValidationLoss(nn.Module):
    """Cross entropy in training; under no_grad (validation) the n-th validation's loss is ``values[n]``."""

    def __init__(self, values):
        super().__init__()
        self.values = list(values)
        self.cross_entropy = nn.CrossEntropyLoss()

    def forward(self, preds, target):
        if torch.is_grad_enabled():
            return self.cross_entropy(preds, target)
        return torch.tensor(self.values.pop(0), dtype=torch.float64)


class AppliedValues(Callback):
    """Records every group's lr, momentum (or betas[0]) and weight_decay right before each optimizer step."""

    def __init__(self):
        self.columns: dict[str, list[float]] = {}

    def on_train_batch_gradient_step_start(self, context):
        for index, group in enumerate(context.optimizer.param_groups):
            momentum = group["momentum"] if "momentum" in group else group["betas"][0]
            for key, value in (("lr", group["lr"]), ("momentum", momentum), ("weight_decay", group["weight_decay"])):
                self.columns.setdefault(f"{key}/{index}", []).append(value)


def optimizer_params(case) -> dict:
    spec = case["optimizer"]
    params = {"weight_decay": spec["weight_decay"]}
    if "momentum" in spec:
        params["momentum"] = spec["momentum"]
    if "betas" in spec:
        params["betas"] = tuple(spec["betas"])
    return params


def run_case(case, tmp_path) -> dict[str, list[float]]:
    """The values applied at every optimizer step when the real Trainer runs ``case``."""
    recorder = AppliedValues()
    validation = case["val_metrics"]
    params = {
        "max_epochs": case["max_epochs"],
        "initial_lr": case["group_lrs"] or case["optimizer"]["lr"],
        "optimizer": case["optimizer"]["type"],
        "optimizer_params": optimizer_params(case),
        "param_scheduler": case["param_scheduler"],
        "loss": "CrossEntropyLoss",
        "phase_callbacks": [recorder],
        "save_model": False,
        "log_steps": False,
        "tensorboard": False,
        "silent_mode": True,
    }
    valid_loader = None
    if validation is not None:
        valid_loader = tiny_loader(num_batches=1, batch_size=2, seed=1)
        if validation["monitor"] == "loss":
            params["loss"] = ScriptedValidationLoss(validation["values"])
        else:
            params["valid_metrics_list"] = [{validation["monitor"]: ScriptedScore(validation["values"])}]
            params["metric_to_watch"] = validation["monitor"]
    loader = tiny_loader(num_batches=case["steps_per_epoch"], batch_size=2)
    Trainer(case["name"], ckpt_root_dir=str(tmp_path)).train(TwoPartNet(), params, loader, valid_loader)
    return recorder.columns


def expected(case) -> dict[str, list[float]]:
    return DOCUMENTED_DIFFERENCES.get(case["name"], case["trajectory"])


def assert_close(got: list[float], want: list[float], label: str) -> None:
    assert len(got) == len(want), label
    for step, (value, reference) in enumerate(zip(got, want)):
        assert abs(value - reference) <= RELATIVE * abs(reference), f"{label} step {step}: {value!r} != {reference!r}"


def test_the_fixture_covers_every_shape_and_both_units():
    names = {entry["type"] for case in CASES for entry in case["param_scheduler"]}
    for shape in ("Constant", "Linear", "Step", "MultiStep", "Exponential", "CosineAnnealing", "Poly", "CosineRestart"):
        assert any(name.startswith(shape) for name in names), shape
    assert {"OneCycleLR", "ReduceOnPlateauLR", "ReduceOnPlateauMomentum", "ReduceOnPlateauParamScheduler"} <= names
    units = {entry.get("by_epoch", True) for case in CASES for entry in case["param_scheduler"]}
    assert units == {True, False}
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_the_trainer_applies_mmengines_values(case, tmp_path):
    applied = run_case(case, tmp_path)
    for column, want in expected(case).items():
        assert_close(applied[column], want, f"{case['name']} {column}")


def preview_recipe(case) -> dict:
    """A recipe whose train loader has exactly ``steps_per_epoch`` batches (max_train_batches)."""
    group_lrs = case["group_lrs"]
    initial_lr = {"net.1": group_lrs["backbone"], "default": group_lrs["default"]} if group_lrs else None
    return {
        "experiment_name": case["name"],
        "model": {"name": "SmallMLP", "params": {"in_features": 16, "hidden": 8, "num_classes": 4}},
        "dataset": {"name": "synthetic", "params": {"num_samples": 128}},
        "dataloader": {"batch_size": 4},
        "training_hyperparams": {
            "max_epochs": case["max_epochs"],
            "max_train_batches": case["steps_per_epoch"],
            "initial_lr": initial_lr or case["optimizer"]["lr"],
            "optimizer": case["optimizer"]["type"],
            "optimizer_params": optimizer_params(case),
            "param_scheduler": case["param_scheduler"],
            "loss": "CrossEntropyLoss",
            "silent_mode": True,
        },
    }


NO_PLATEAU = [case for case in CASES if case["val_metrics"] is None]


@pytest.mark.parametrize("case", NO_PLATEAU, ids=[case["name"] for case in NO_PLATEAU])
def test_the_preview_gives_mmengines_values(case):
    preview = preview_schedule(preview_recipe(case))
    labels = ["net.1", "default"] if case["group_lrs"] else ["default"]
    for column, want in expected(case).items():
        key, index = column.rsplit("/", 1)
        label = f"{key}/{labels[int(index)]}"
        if key == "momentum" and label not in preview.values:  # the preview drops a momentum that never changes
            assert len(set(want)) == 1, label
            continue
        assert_close(preview.values[label], want, f"{case['name']} {label}")
