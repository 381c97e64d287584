"""EMA weights: against a hand-computed average of the recorded per-step weights for each decay type,
validation on the EMA weights with training continuing on the raw ones bitwise, checkpoints, resume, bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from tiny_fixtures import base_params, tiny_loader
from torch import nn

from callbacks import Callback
from trainer import Trainer


def bn_mlp(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


class StepWeights(Callback):
    """The net's state after every optimizer step (TRAIN_BATCH_STEP); stops after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.states: list[dict[str, torch.Tensor]] = []
        self.stop_after = stop_after

    def on_train_batch_gradient_step_end(self, context) -> None:
        self.states.append(copy.deepcopy(context.net.state_dict()))

    def on_train_loader_end(self, context) -> None:
        if self.stop_after is not None and context.epoch + 1 == self.stop_after:
            context.stop_training = True


def _train(tmp_path, name="ema", recorder=None, max_epochs=3, **params):
    recorder = recorder or StepWeights()
    settings = base_params(
        max_epochs=max_epochs, phase_callbacks=[recorder], optimizer="Adam", initial_lr=0.05, **params
    )
    settings.setdefault("ema", True)
    net = bn_mlp()
    result = Trainer(name, ckpt_root_dir=str(tmp_path)).train(
        net, settings, tiny_loader(4, shuffle=True), tiny_loader(2, seed=1)
    )
    return net, result, recorder


def _decay(decay_type: str, n: int) -> float:
    return {
        "constant": 0.9,
        "threshold": min(0.9, (1 + n) / (10 + n)),
        "exp": 0.9 * (1 - math.exp(-n / 2.0)),
    }[decay_type]


@pytest.mark.parametrize("decay_type", ["constant", "threshold", "exp"])
def test_ema_is_the_hand_computed_average_of_the_step_weights(tmp_path, decay_type):
    _, _, recorder = _train(tmp_path, ema_params={"decay": 0.9, "decay_type": decay_type, "beta": 2.0})
    assert len(recorder.states) == 12
    # From the run's initial weights, n = 1, 2, ... over the 12 recorded steps, in float64.
    ema = {key: value.double() for key, value in bn_mlp().state_dict().items()}
    for n, state in enumerate(recorder.states, start=1):
        d = _decay(decay_type, n)
        for key, value in state.items():
            if value.is_floating_point():
                ema[key] = d * ema[key] + (1 - d) * value.double()
            else:
                ema[key] = value.double()
    saved = torch.load(tmp_path / "ema" / "ckpt_latest.pth", weights_only=True)["ema_net"]
    assert saved.keys() == ema.keys()
    for key, value in saved.items():
        assert torch.allclose(value.double(), ema[key], rtol=0, atol=1e-6), key
    assert saved["1.num_batches_tracked"].item() == 12  # non-floating buffers are copied


def test_validation_uses_the_ema_and_training_continues_on_the_raw_weights(tmp_path):
    ema_net, ema_result, _ = _train(tmp_path, ema_params={"decay": 0.8, "decay_type": "constant"})
    plain_net, plain_result, _ = _train(tmp_path, "plain", ema=False)
    # Training is untouched: the same raw weights bitwise, the same train losses.
    for key, value in plain_net.state_dict().items():
        assert torch.equal(ema_net.state_dict()[key], value), key
    assert ema_result.train_metrics == plain_result.train_metrics
    # Validation ran on the EMA weights: the loss of the saved ema_net on the valid loader.
    checkpoint = torch.load(tmp_path / "ema" / "ckpt_latest.pth", weights_only=True)
    for key, value in plain_net.state_dict().items():
        assert torch.equal(checkpoint["net"][key], value), key
    model = bn_mlp()
    model.load_state_dict(checkpoint["ema_net"])
    model.eval()
    with torch.no_grad():
        losses = [nn.functional.cross_entropy(model(x), y).item() for x, y in tiny_loader(2, seed=1)]
    assert ema_result.valid_metrics["loss"] == pytest.approx(sum(losses) / 2, rel=1e-6)
    assert ema_result.valid_metrics["loss"] != plain_result.valid_metrics["loss"]
    # ckpt_best was picked by the EMA's validation loss and holds both.
    best = torch.load(tmp_path / "ema" / "ckpt_best.pth", weights_only=True)
    assert best["best_metric"] == ema_result.best_metric
    assert {"net", "ema_net"} <= best.keys()


def test_resume_restores_net_and_ema_bitwise(tmp_path):
    _train(tmp_path, "full", max_epochs=4)
    _train(tmp_path, "split", StepWeights(stop_after=2), max_epochs=4)
    _train(tmp_path, "split", max_epochs=4, resume=True)
    full = torch.load(tmp_path / "full" / "ckpt_latest.pth", weights_only=True)
    split = torch.load(tmp_path / "split" / "ckpt_latest.pth", weights_only=True)
    assert split["epoch"] == 4
    for section in ("net", "ema_net"):
        for key, value in full[section].items():
            assert torch.equal(split[section][key], value), (section, key)


def test_resume_without_ema_state_is_an_error(tmp_path):
    _train(tmp_path, "late", max_epochs=1, ema=False)
    with pytest.raises(RuntimeError, match=r"has no 'ema_net' entry for callback ModelEMA"):
        _train(tmp_path, "late", max_epochs=2, resume=True)


def test_the_update_is_one_fused_call():
    """A model of 100 tensors costs one _foreach_lerp_ call per step, not a Python loop over tensors."""
    from callbacks.ema import ModelEMA

    net = nn.Sequential(*[nn.Linear(2, 2) for _ in range(50)])
    initial = [parameter.detach().clone() for parameter in net.parameters()]
    ema = ModelEMA(net, decay=0.5, decay_type="constant")
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.fill_(1.0)
    with torch.autograd.profiler.profile() as profile:
        ema.update(1)
    names = [event.name for event in profile.function_events]
    # One call from Python; on CPU torch runs it as a C++ loop of lerp_ (on CUDA, as fused kernels).
    assert names.count("aten::_foreach_lerp_") == 1
    for averaged, start in zip(ema.ema_net.parameters(), initial):
        assert torch.allclose(averaged, 0.5 * start + 0.5, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    ("ema_params", "error", "match"),
    [
        ({"decay": 1.0}, ValueError, r"key 'ema_params.decay' must be in \(0, 1\) \(exclusive\), got 1.0"),
        ({"decay": 0}, ValueError, r"key 'ema_params.decay' must be in \(0, 1\) \(exclusive\), got 0"),
        ({"decay": "high"}, TypeError, r"key 'ema_params.decay' must be a number, got 'high'"),
        (
            {"decay_type": "expo"},
            ValueError,
            r"key 'ema_params.decay_type': unknown name 'expo'. Valid names: constant, exp, threshold. Did you mean 'exp'\?",
        ),
        (
            {"betta": 3},
            ValueError,
            r"key 'ema_params': unknown key 'betta'; valid keys: decay, decay_type, beta. Did you mean 'beta'\?",
        ),
        ({"beta": 0}, ValueError, r"key 'ema_params.beta' must be > 0, got 0"),
    ],
)
def test_bad_ema_params(tmp_path, ema_params, error, match):
    recorder = StepWeights()
    with pytest.raises(error, match=match):
        _train(tmp_path, "bad", recorder, ema_params=ema_params)
    assert recorder.states == []
    assert not (tmp_path / "bad").exists()
