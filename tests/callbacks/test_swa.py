"""SWA: the LR against a hand-written loop with torch's SWALR, the averaged weights against
AveragedModel fed the same epoch-end weights, update_bn, ckpt_swa.pth, resume, preview, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_fixtures import base_params, tiny_dataset, tiny_loader
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from callbacks import Callback
from trainer import Trainer

S = 3  # optimizer steps per epoch


def bn_mlp(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


class Recorder(Callback):
    """The LR of every optimizer step and the weights at every TRAIN_EPOCH_END; stops after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.lrs: list[float] = []
        self.epoch_end: list[dict[str, torch.Tensor]] = []
        self.stop_after = stop_after

    def on_train_batch_gradient_step_start(self, context) -> None:
        self.lrs.append(context.optimizer.param_groups[0]["lr"])

    def on_train_loader_end(self, context) -> None:
        self.epoch_end.append(copy.deepcopy(context.net.state_dict()))
        if self.stop_after is not None and context.epoch + 1 == self.stop_after:
            context.stop_training = True


SWA = {"start_epoch": 2, "swa_lr": 0.05, "anneal_epochs": 2, "anneal_strategy": "cos"}


def _train(tmp_path, name="swa", recorder=None, max_epochs=5, shuffle=True, **params):
    recorder = recorder or Recorder()
    settings = base_params(max_epochs=max_epochs, initial_lr=0.2, phase_callbacks=[recorder], **params)
    settings.setdefault("swa", SWA)
    result = Trainer(name, ckpt_root_dir=str(tmp_path)).train(
        bn_mlp(), settings, tiny_loader(S, shuffle=shuffle), tiny_loader(2, seed=1)
    )
    return result, recorder


def _swalr_lrs(lr_at_start: float, epochs: int, **swa) -> list[float]:
    """The hand-written torch loop: SWALR built on the group's LR, stepped after every epoch of S steps."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr_at_start)
    scheduler = SWALR(optimizer, **swa)
    lrs = []
    for _ in range(epochs):
        lrs += [optimizer.param_groups[0]["lr"]] * S
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize(
    "lr_mode",
    [
        "CosineLRScheduler",  # per step, written at TRAIN_BATCH_START: SWA overwrites it at every step
        {"StepLR": {"step_size": 1, "gamma": 0.5}},  # torch, stepped at TRAIN_EPOCH_END before SWALR steps
        {"ExponentialLR": {"gamma": 0.5, "phase": "TRAIN_BATCH_STEP"}},  # torch, per step
    ],
)
@pytest.mark.parametrize(
    "swa",
    [
        SWA,
        {"start_epoch": 1, "swa_lr": 0.01, "anneal_epochs": 0},
        {"start_epoch": 3, "swa_lr": 0.3, "anneal_strategy": "linear"},
    ],
)
def test_lr_from_start_epoch_is_torch_swalr(tmp_path, lr_mode, swa):
    _, plain = _train(tmp_path, "plain", lr_mode=lr_mode, swa=None)
    _, recorder = _train(tmp_path, lr_mode=lr_mode, swa=swa)
    start = swa["start_epoch"] * S
    assert recorder.lrs[:start] == plain.lrs[:start]
    # SWALR is built when start_epoch starts, on the LR the schedule left in the group then: a torch
    # scheduler has already stepped to the value of the next step; a built-in still holds the last step's.
    at_start = plain.lrs[start] if isinstance(lr_mode, dict) else plain.lrs[start - 1]
    options = {key: value for key, value in swa.items() if key != "start_epoch"}
    assert recorder.lrs[start:] == _swalr_lrs(at_start, 5 - swa["start_epoch"], **options)


def test_averaged_weights_update_bn_and_ckpt_swa(tmp_path):
    result, recorder = _train(tmp_path, shuffle=False)
    reference = AveragedModel(bn_mlp())
    model = bn_mlp()
    for state in recorder.epoch_end[SWA["start_epoch"] :]:
        model.load_state_dict(state)
        reference.update_parameters(model)
    latest = torch.load(tmp_path / "swa" / "ckpt_latest.pth", weights_only=True)
    assert int(latest["swa_model"]["n_averaged"]) == 3
    for key, value in reference.state_dict().items():
        assert torch.equal(latest["swa_model"][key], value), key
    # At the end: BN statistics recomputed on the train loader, then validated and saved.
    update_bn(tiny_loader(S), reference)
    swa = torch.load(tmp_path / "swa" / "ckpt_swa.pth", weights_only=True)
    assert (swa["n_averaged"], swa["epoch"], swa["global_step"]) == (3, 5, 15)
    for key, value in reference.module.state_dict().items():
        assert torch.allclose(swa["net"][key].float(), value.float(), atol=1e-6), key
    # Its metrics, reported in the TrainResult, are those of the saved weights on the valid loader.
    net = bn_mlp()
    net.load_state_dict(swa["net"])
    net.eval()
    with torch.no_grad():
        losses = [nn.functional.cross_entropy(net(x), y).item() for x, y in tiny_loader(2, seed=1)]
    assert result.swa_metrics == swa["valid_metrics"]
    assert result.swa_metrics["loss"] == pytest.approx(sum(losses) / 2, rel=1e-6)
    assert result.valid_metrics != result.swa_metrics


def test_swa_does_not_change_the_training_rng(tmp_path):
    """update_bn iterates the shuffled train loader inside fork_rng: the caller's RNG continues as without SWA."""
    _train(tmp_path, "a", swa=None)
    after_plain = torch.rand(3)
    _train(tmp_path, "b")
    assert torch.equal(torch.rand(3), after_plain)


@pytest.mark.parametrize("stop_after", [1, 3])
def test_resume_is_exact(tmp_path, stop_after):
    lr_mode = {"lr_mode": "CosineLRScheduler", "optimizer": "Adam"}
    full, full_recorder = _train(tmp_path, "full", **lr_mode)
    _train(tmp_path, "split", Recorder(stop_after=stop_after), **lr_mode)
    resumed, resumed_recorder = _train(tmp_path, "split", resume=True, **lr_mode)
    assert resumed.next_epoch == 5
    assert resumed_recorder.lrs == full_recorder.lrs[stop_after * S :]
    for name in ("ckpt_latest.pth", "ckpt_swa.pth"):
        a = torch.load(tmp_path / "full" / name, weights_only=True)
        b = torch.load(tmp_path / "split" / name, weights_only=True)
        for section in ("net", "swa_model"):
            for key, value in a.get(section, {}).items():
                assert torch.equal(value, b[section][key]), (name, section, key)
    assert resumed.swa_metrics == full.swa_metrics


def test_preview_shows_the_swa_segment(tmp_path):
    from trainer.preview import preview_schedule, summary_text

    recipe = {
        "experiment_name": "swa_preview",
        "ckpt_root_dir": str(tmp_path),
        "model": {"name": "SmallMLP", "params": {"in_features": 16, "hidden": 8, "num_classes": 4}},
        "dataset": {"name": "synthetic", "params": {"num_samples": 48, "valid_fraction": 0.25}},
        "dataloader": {"batch_size": 12},
        "training_hyperparams": {
            "max_epochs": 5,
            "initial_lr": 0.2,
            "lr_mode": "CosineLRScheduler",
            "loss": "CrossEntropyLoss",
            "swa": SWA,
        },
    }
    preview = preview_schedule(recipe)
    _, recorder = _train(tmp_path, lr_mode="CosineLRScheduler")  # the same clock: 3 steps per epoch
    assert preview.values["lr/default"] == recorder.lrs
    text = summary_text(preview)
    assert "swa: epochs 2-4 (steps 6-14) follow SWALR (swa_lr 0.05, anneal_epochs 2, anneal_strategy cos)" in text


@pytest.mark.parametrize(
    ("swa", "error", "match"),
    [
        (
            {"start_epoch": 5, "swa_lr": 0.05},
            ValueError,
            r"key 'swa.start_epoch' must be in 0..max_epochs-1 = 0..4 .*got 5",
        ),
        ({"start_epoch": 1.5, "swa_lr": 0.05}, TypeError, r"key 'swa.start_epoch' must be an int, got float 1.5"),
        (
            {"start_epochs": 1, "swa_lr": 0.05},
            ValueError,
            r"key 'swa': unknown key 'start_epochs'; valid keys: .*Did you mean 'start_epoch'\?",
        ),
        ({"swa_lr": 0.05}, ValueError, r"key 'swa': needs 'start_epoch'"),
        ({"start_epoch": 1, "swa_lr": 0}, ValueError, r"key 'swa.swa_lr' must be > 0, got 0"),
        (
            {"start_epoch": 1, "swa_lr": 0.1, "anneal_strategy": "cosine"},
            ValueError,
            r"key 'swa.anneal_strategy': unknown name 'cosine'. Valid names: cos, linear. Did you mean 'cos'\?",
        ),
        (
            {"start_epoch": 1, "swa_lr": 0.1, "anneal_epochs": -1},
            ValueError,
            r"key 'swa.anneal_epochs' must be >= 0, got -1",
        ),
        ([1, 0.1], TypeError, r"key 'swa' must be mapping or None"),
    ],
)
def test_bad_swa_settings(tmp_path, swa, error, match):
    recorder = Recorder()
    with pytest.raises(error, match=match):
        _train(tmp_path, "bad", recorder, swa=swa)
    assert recorder.lrs == []
    assert not (tmp_path / "bad").exists()
    assert len(tiny_dataset()) == 24


def test_train_command_prints_the_swa_metrics(tmp_path, capsys):
    from trainer.cli import main

    recipe = tmp_path / "swa.yaml"
    recipe.write_text(
        f"""experiment_name: swa_cli
ckpt_root_dir: {tmp_path}
model: {{name: SmallMLP, params: {{in_features: 16, hidden: 8, num_classes: 4}}}}
dataset: {{name: synthetic, params: {{num_samples: 64}}}}
dataloader: {{batch_size: 16}}
training_hyperparams:
  max_epochs: 3
  initial_lr: 0.1
  loss: CrossEntropyLoss
  swa: {{start_epoch: 1, swa_lr: 0.05}}
  silent_mode: true
  log_steps: false
  tensorboard: false
"""
    )
    assert main(["train", str(recipe)]) == 0
    out = capsys.readouterr().out
    swa = torch.load(tmp_path / "swa_cli" / "ckpt_swa.pth", weights_only=True)
    assert f"swa (ckpt_swa.pth): valid loss {swa['valid_metrics']['loss']:.4g}\n" in out
    assert "ckpt_swa.pth" in out.split("checkpoints: ")[1].splitlines()[0]


def test_all_three_together_resume_exactly(tmp_path):
    """EMA, SWA and snapshots in one run (the EMA validates, SWALR owns the LR from epoch 2): stopped
    after epoch 3 and resumed, every checkpoint section and every snapshot is bitwise the full run's."""
    settings = {
        "lr_mode": "CosineWarmRestartsLRScheduler",
        "restart_period_epochs": 1,
        "snapshot_ensemble": True,
        "ema": True,
        "ema_params": {"decay": 0.7, "decay_type": "threshold"},
        "optimizer": "Adam",
    }
    _train(tmp_path, "full", **settings)
    _train(tmp_path, "split", Recorder(stop_after=3), **settings)
    _, resumed = _train(tmp_path, "split", resume=True, **settings)
    assert len(resumed.lrs) == 2 * S
    names = ["ckpt_latest.pth", "ckpt_swa.pth", *(f"ckpt_snapshot_epoch{n}.pth" for n in range(1, 6))]
    for name in names:
        a = torch.load(tmp_path / "full" / name, weights_only=True)
        b = torch.load(tmp_path / "split" / name, weights_only=True)
        for section in ("net", "ema_net", "swa_model"):
            for key, value in a.get(section, {}).items():
                assert torch.equal(value, b[section][key]), (name, section, key)
