"""Snapshot ensembles: which epochs get ckpt_snapshot_epoch{N}.pth, what the files hold, resume, bad input."""

from __future__ import annotations

import pytest
import torch
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from callbacks import Callback
from trainer import Trainer


class EpochEndWeights(Callback):
    """Copies of the net's weights at every TRAIN_EPOCH_END, by epoch counted from 1."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_loader_end(self, context) -> None:
        self.weights[context.epoch + 1] = {k: v.clone() for k, v in context.net.state_dict().items()}


def _train(tmp_path, name="snap", num_batches=2, **params):
    recorder = EpochEndWeights()
    settings = base_params(snapshot_ensemble=True, phase_callbacks=[recorder], **params)
    result = Trainer(name, ckpt_root_dir=str(tmp_path)).train(
        tiny_mlp(), settings, tiny_loader(num_batches), tiny_loader(2, seed=1)
    )
    return result, recorder


def _snapshot_epochs(run_dir) -> list[int]:
    names = [path.name for path in run_dir.glob("ckpt_snapshot_epoch*.pth")]
    return sorted(int(name[len("ckpt_snapshot_epoch") : -len(".pth")]) for name in names)


WARM = {"lr_mode": "CosineWarmRestartsLRScheduler", "restart_period_epochs": 1, "restart_period_mult": 2}


@pytest.mark.parametrize(
    ("params", "num_batches", "expected"),
    [
        # Built-in SGDR, P = 1, m = 2 over 7 epochs: cycles of 1, 2, 4 epochs.
        ({**WARM, "max_epochs": 7}, 2, [1, 3, 7]),
        # torch, stepped per epoch: T_0 = 2, T_mult = 2 restarts after epoch 2; 6 ends the run.
        ({"lr_mode": {"CosineAnnealingWarmRestarts": {"T_0": 2, "T_mult": 2}}, "max_epochs": 6}, 2, [2, 6]),
        # torch, stepped per optimizer step (S = 3): T_0 = 4 steps ends cycles in epochs 2, 3 (steps 3, 7).
        (
            {"lr_mode": {"CosineAnnealingWarmRestarts": {"T_0": 4, "phase": "TRAIN_BATCH_STEP"}}, "max_epochs": 4},
            3,
            [2, 3, 4],
        ),
        # An explicit list: exactly those epochs (the last epoch is not added), with any schedule.
        ({"snapshot_epochs": [3, 1], "lr_mode": "CosineLRScheduler", "max_epochs": 4}, 2, [1, 3]),
        ({**WARM, "snapshot_epochs": [2], "max_epochs": 7}, 2, [2]),
    ],
)
def test_snapshot_epochs(tmp_path, params, num_batches, expected):
    result, recorder = _train(tmp_path, num_batches=num_batches, **params)
    run_dir = tmp_path / "snap"
    assert _snapshot_epochs(run_dir) == expected
    for epoch in expected:
        snapshot = torch.load(run_dir / f"ckpt_snapshot_epoch{epoch}.pth", weights_only=True)
        assert snapshot["epoch"] == epoch
        assert snapshot["global_step"] == epoch * num_batches
        assert snapshot["net"].keys() == recorder.weights[epoch].keys()
        for key, value in snapshot["net"].items():
            assert torch.equal(value, recorder.weights[epoch][key]), (epoch, key)
        assert set(snapshot["valid_metrics"]) == {"loss"}


def test_resumed_run_writes_the_same_snapshots(tmp_path):
    class StopAfter(Callback):
        def on_train_loader_end(self, context):
            context.stop_training = context.epoch + 1 == 2

    params = {**WARM, "max_epochs": 7, "optimizer": "Adam", "initial_lr": 0.01}
    _train(tmp_path, "full", **params)
    settings = base_params(snapshot_ensemble=True, phase_callbacks=[StopAfter()], **params)
    Trainer("split", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), settings, tiny_loader(2), tiny_loader(2, seed=1))
    assert _snapshot_epochs(tmp_path / "split") == [1]
    _train(tmp_path, "split", resume=True, **params)
    assert _snapshot_epochs(tmp_path / "split") == [1, 3, 7]
    for epoch in (1, 3, 7):
        full = torch.load(tmp_path / "full" / f"ckpt_snapshot_epoch{epoch}.pth", weights_only=True)
        split = torch.load(tmp_path / "split" / f"ckpt_snapshot_epoch{epoch}.pth", weights_only=True)
        for key in full["net"]:
            assert torch.equal(full["net"][key], split["net"][key])


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (
            {"lr_mode": "CosineLRScheduler", "max_epochs": 4},
            ValueError,
            r"key 'snapshot_ensemble' is true, but lr_mode 'CosineLRScheduler' has no warm restart within the 4 "
            r"epochs \(warm restarts come from lr_mode CosineWarmRestartsLRScheduler.*explicit 'snapshot_epochs",
        ),
        ({"max_epochs": 4}, ValueError, r"lr_mode None has no warm restart within the 4 epochs"),
        (
            {"lr_mode": {"StepLR": {"step_size": 1}}, "max_epochs": 3},
            ValueError,
            r"lr_mode \{'StepLR': \{'step_size': 1\}\} has no warm restart within the 3 epochs; a snapshot",
        ),
        # One cycle as long as the run: it never restarts.
        (
            {"lr_mode": "CosineWarmRestartsLRScheduler", "restart_period_epochs": 4, "max_epochs": 4},
            ValueError,
            r"has no warm restart within the 4 epochs",
        ),
        (
            {**WARM, "max_epochs": 4, "snapshot_epochs": [0, 2]},
            ValueError,
            r"key 'snapshot_epochs': epoch 0 is outside 1..max_epochs=4 \(snapshot epochs are counted from 1\)",
        ),
        ({**WARM, "max_epochs": 4, "snapshot_epochs": [5]}, ValueError, r"epoch 5 is outside 1..max_epochs=4"),
        ({**WARM, "max_epochs": 4, "snapshot_epochs": 3}, TypeError, r"key 'snapshot_epochs' must be list of int"),
    ],
)
def test_bad_snapshot_settings_fail_before_training(tmp_path, params, error, match):
    recorder = EpochEndWeights()
    with pytest.raises(error, match=match):
        Trainer("bad", ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(), base_params(snapshot_ensemble=True, phase_callbacks=[recorder], **params), tiny_loader(2)
        )
    assert recorder.weights == {}
    assert not (tmp_path / "bad").exists()


def test_schedule_preview_marks_the_snapshot_epochs(tmp_path):
    from trainer.preview import preview_schedule, summary_text

    recipe = {
        "experiment_name": "snap_preview",
        "ckpt_root_dir": str(tmp_path),
        "model": {"name": "SmallMLP", "params": {"in_features": 16, "hidden": 8, "num_classes": 4}},
        "dataset": {"name": "synthetic", "params": {"num_samples": 32, "valid_fraction": 0.25}},
        "dataloader": {"batch_size": 12},
        "training_hyperparams": {**WARM, "max_epochs": 7, "initial_lr": 0.1, "loss": "CrossEntropyLoss"},
    }
    recipe["training_hyperparams"]["snapshot_ensemble"] = True
    preview = preview_schedule(recipe)
    assert preview.snapshot_epochs == [1, 3, 7]
    assert "snapshots (ckpt_snapshot_epoch{N}.pth) after epochs (from 1): 1, 3, 7" in summary_text(preview)
    # The LR jumps back to the peak right after each snapshot epoch but the last (2 steps per epoch).
    lrs = preview.values["lr/default"]
    assert [k for k in range(1, len(lrs)) if lrs[k] > lrs[k - 1]] == [2, 6]
