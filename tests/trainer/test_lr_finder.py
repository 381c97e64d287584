"""Trainer.find_lr on real tiny models and loaders: the lesson's algorithm, training params, no trace left."""

from __future__ import annotations

import math
import random
import sys

import numpy as np
import pytest
import torch
from tiny_fixtures import base_params, tiny_dataset, tiny_mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainer import Trainer
from trainer.lr_suggestions import suggest


def loader(num_batches: int = 8, batch_size: int = 8, shuffle: bool = False, seed: int = 0) -> DataLoader:
    return DataLoader(tiny_dataset(num_batches * batch_size, seed=seed), batch_size=batch_size, shuffle=shuffle)


def find_lr(tmp_path, model, params, train_loader, **kwargs):
    return Trainer("lr_find", ckpt_root_dir=str(tmp_path), device="cpu").find_lr(
        model, params, train_loader, progress=False, **kwargs
    )


def lesson_range_test(model, train_loader, start_lr, end_lr, num_iter, smooth_f, diverge_th, optimizer=None, step=None):
    """The LR range test as the lesson writes it, by hand: exponential LRs, bias-corrected moving
    average, stop after the first step whose smoothed loss exceeds diverge_th x the best."""
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=start_lr)
    criterion = nn.CrossEntropyLoss()
    lrs, losses, raw = [], [], []
    avg_loss, best_loss = 0.0, 0.0
    batches = iter(train_loader)
    for i in range(num_iter):
        lr = start_lr * (end_lr / start_lr) ** (i / (num_iter - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("ratio", 1.0)
        loss = step(model, optimizer, criterion, batches, train_loader) if step else None
        if loss is None:
            try:
                inputs, target = next(batches)
            except StopIteration:
                batches = iter(train_loader)
                inputs, target = next(batches)
            optimizer.zero_grad()
            loss_tensor = criterion(model(inputs), target)
            loss_tensor.backward()
            optimizer.step()
            loss = loss_tensor.item()
        avg_loss = smooth_f * loss + (1 - smooth_f) * avg_loss
        smoothed = avg_loss / (1 - (1 - smooth_f) ** (i + 1))
        lrs.append(lr)
        losses.append(smoothed)
        raw.append(loss)
        if i > 0 and smoothed > diverge_th * best_loss:
            break
        if i == 0 or smoothed < best_loss:
            best_loss = smoothed
    return lrs, losses, raw


def test_the_sweep_equals_the_lessons_range_test_and_stops_where_it_diverges(tmp_path):
    # 40 steps over a loader of 8 batches: the loader cycles 5 times; end_lr 50 makes the loss explode.
    args = dict(start_lr=1e-4, end_lr=50.0, num_iter=40, smooth_f=0.05, diverge_th=5.0)
    expected_lrs, expected_losses, expected_raw = lesson_range_test(tiny_mlp(0), loader(), **args)
    result = find_lr(tmp_path, tiny_mlp(0), base_params(), loader(), **args)
    assert len(expected_lrs) < 40  # the reference diverged too: the stop is compared, not only the sweep
    assert result.lrs == expected_lrs
    assert result.losses == pytest.approx(expected_losses, rel=1e-12, abs=0)
    assert result.raw_losses == pytest.approx(expected_raw, rel=1e-12, abs=0)
    assert result.diverged_at == len(expected_lrs) - 1
    assert result.stop_reason.startswith(f"diverged at step {result.diverged_at} ")
    best_before = min(result.losses[:-1])
    assert result.losses[-1] > 5.0 * best_before
    assert all(value <= 5.0 * min(result.losses[: k + 1]) for k, value in enumerate(result.losses[:-1]))


def test_linear_mode_and_no_smoothing(tmp_path):
    result = find_lr(
        tmp_path, tiny_mlp(0), base_params(), loader(), start_lr=0.01, end_lr=0.5, num_iter=6, mode="linear", smooth_f=1
    )
    assert result.lrs == pytest.approx([0.01, 0.108, 0.206, 0.304, 0.402, 0.5], rel=1e-12)
    assert result.losses == result.raw_losses  # smooth_f 1: avg_i = loss_i, divided by 1 - 0
    assert result.diverged_at is None and result.stop_reason == "ran all 6 steps"
    assert result.suggestions == {} and result.suggested_lr is None
    assert result.message.startswith("too short: 6 points, 1 left after skipping the first 0 and the last 5")


def test_param_groups_momentum_clipping_and_mixed_precision_are_those_of_training(tmp_path):
    """initial_lr {"0": 0.02, default: 0.1}: the first layer sweeps at 0.2 x the LR; momentum, weight
    decay, clip_grad_norm and bfloat16 autocast as in the hand loop below."""
    params = base_params(
        initial_lr={"0": 0.02, "default": 0.1},
        optimizer_params={"momentum": 0.9, "weight_decay": 1e-3},
        clip_grad_norm=0.5,
        mixed_precision=True,
    )
    args = dict(start_lr=1e-3, end_lr=3.0, num_iter=20, smooth_f=0.1, diverge_th=4.0)
    result = find_lr(tmp_path, tiny_mlp(0), params, loader(), **args)

    model = tiny_mlp(0)
    groups = [
        {"params": list(model[0].parameters()), "ratio": 0.02 / 0.1},
        {"params": list(model[2].parameters()), "ratio": 1.0},
    ]
    optimizer = torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=1e-3)

    def step(model, optimizer, criterion, batches, train_loader):
        inputs, target = next(batches)
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = criterion(model(inputs), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        return loss.float().item()

    cycling = DataLoader(loader().dataset, batch_size=8, sampler=list(range(64)) * 3)
    expected_lrs, expected_losses, _ = lesson_range_test(model, cycling, optimizer=optimizer, step=step, **args)
    assert result.group_ratios == {"0": 0.02 / 0.1, "default": 1.0}
    assert result.lrs == expected_lrs
    assert result.losses == pytest.approx(expected_losses, rel=1e-12, abs=0)


def test_batch_accumulate_gives_one_point_per_optimizer_step_with_the_mean_loss_of_its_micro_batches(tmp_path):
    # 5 optimizer steps x 3 micro-batches = 15 batches of a 4-batch loader (it cycles).
    result = find_lr(
        tmp_path,
        tiny_mlp(0),
        base_params(batch_accumulate=3),
        loader(num_batches=4),
        start_lr=0.01,
        end_lr=1.0,
        num_iter=5,
    )
    assert len(result.lrs) == len(result.raw_losses) == 5

    model, criterion = tiny_mlp(0), nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [batch for _ in range(4) for batch in loader(num_batches=4)]
    expected = []
    for step in range(5):
        for group in optimizer.param_groups:
            group["lr"] = 0.01 * 100 ** (step / 4)
        losses = []
        for inputs, target in batches[3 * step : 3 * step + 3]:
            loss = criterion(model(inputs), target)
            (loss / 3).backward()
            losses.append(loss.item())
        optimizer.step()
        optimizer.zero_grad()
        expected.append(sum(losses) / 3)
    assert result.raw_losses == pytest.approx(expected, rel=1e-6)


def nan_loader(nan_batch: int, num_batches: int = 60, batch_size: int = 4) -> DataLoader:
    features, labels = tiny_dataset(num_batches * batch_size).tensors
    features = features.clone()
    features[nan_batch * batch_size] = float("nan")  # one corrupt sample in batch `nan_batch`
    return DataLoader(TensorDataset(features, labels), batch_size=batch_size)


def test_a_nan_loss_at_step_k_ends_the_sweep_at_k_and_suggestions_come_from_the_steps_before(tmp_path):
    model = tiny_mlp(0)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    result = find_lr(tmp_path, model, base_params(), nan_loader(nan_batch=40), start_lr=1e-2, end_lr=10.0, num_iter=60)
    assert len(result.lrs) == 40 and result.diverged_at == 40
    assert result.stop_reason == f"non-finite loss nan at step 40 (lr {1e-2 * 1000 ** (40 / 59):.3g}); step not taken"
    assert all(math.isfinite(loss) for loss in result.losses + result.raw_losses)
    expected = suggest(result.lrs, result.losses, 60)
    assert result.suggestions == expected.lrs and result.suggestions  # computed from the 40 finite steps
    assert max(result.suggestion_indices.values()) < 40
    assert all(torch.equal(value, before[name]) for name, value in model.state_dict().items())


class BatchNormNet(nn.Module):
    """Linear -> BatchNorm -> Dropout -> Linear: running statistics and an RNG-driven layer."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            self.layers = nn.Sequential(
                nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3)
            )

    def forward(self, inputs):
        return self.layers(inputs)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_find_lr_leaves_no_trace_so_find_lr_then_train_is_train(tmp_path):
    params = base_params(max_epochs=2, optimizer_params={"momentum": 0.9}, save_model=False, plots=False)
    seed_all(11)
    model = BatchNormNet()
    model.eval()
    model.layers[0].weight.grad = torch.full_like(model.layers[0].weight, 0.25)
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    torch_state, python_state, numpy_state = torch.get_rng_state(), random.getstate(), np.random.get_state()

    result = find_lr(tmp_path, model, params, loader(shuffle=True), start_lr=1e-3, end_lr=10.0, num_iter=30)
    assert len(result.lrs) >= 10  # it trained: weights and BatchNorm statistics moved, and come back
    assert all(torch.equal(value, weights[name]) for name, value in model.state_dict().items())
    assert torch.equal(model.layers[0].weight.grad, torch.full_like(model.layers[0].weight, 0.25))
    assert model.layers[4].weight.grad is None and not model.training
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == python_state
    after = np.random.get_state()
    assert after[0] == numpy_state[0] and np.array_equal(after[1], numpy_state[1]) and after[2:] == numpy_state[2:]

    model.layers[0].weight.grad = None
    trainer = Trainer("after_find_lr", ckpt_root_dir=str(tmp_path), device="cpu")
    trainer.train(model, params, loader(shuffle=True))

    seed_all(11)
    alone = BatchNormNet()
    Trainer("alone", ckpt_root_dir=str(tmp_path), device="cpu").train(alone, params, loader(shuffle=True))
    assert all(torch.equal(value, alone.state_dict()[name]) for name, value in model.state_dict().items())


def test_a_given_optimizer_instance_gets_its_state_and_lrs_back(tmp_path):
    model = tiny_mlp(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for inputs, target in loader(num_batches=2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), target).backward()
        optimizer.step()
    momentum = [optimizer.state[param]["momentum_buffer"].clone() for param in model.parameters()]
    result = find_lr(tmp_path, model, base_params(optimizer=optimizer, initial_lr=None), loader(), num_iter=12)
    assert len(result.lrs) == 12
    assert optimizer.param_groups[0]["lr"] == 0.05 and "name" not in optimizer.param_groups[0]
    assert all(
        torch.equal(optimizer.state[param]["momentum_buffer"], saved)
        for param, saved in zip(model.parameters(), momentum)
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"start_lr": 1.0, "end_lr": 1.0},
            ValueError,
            r"find_lr: start_lr must be < end_lr, got start_lr=1.0 >= end_lr=1.0",
        ),
        ({"start_lr": 0.0}, ValueError, r"start_lr must be > 0"),
        ({"num_iter": 1}, ValueError, r"find_lr: num_iter must be >= 2 \(the sweep needs two LRs\), got 1"),
        ({"num_iter": 10.0}, TypeError, r"find_lr: num_iter must be an int, got float 10.0"),
        (
            {"mode": "expo"},
            ValueError,
            r"find_lr: unknown mode 'expo'; valid modes: exp, linear\. Did you mean 'exp'\?",
        ),
        ({"smooth_f": 0.0}, ValueError, r"find_lr: smooth_f must be in \(0, 1\] .*got 0.0"),
        ({"smooth_f": 1.5}, ValueError, r"find_lr: smooth_f must be in \(0, 1\]"),
        ({"diverge_th": 1.0}, ValueError, r"find_lr: diverge_th must be > 1 .*got 1.0"),
        ({"end_lr": "10"}, TypeError, r"find_lr: end_lr must be a number, got str '10'"),
    ],
)
def test_bad_arguments_fail_before_the_first_batch(tmp_path, kwargs, error, match):
    model = tiny_mlp(0)
    before = torch.get_rng_state()
    with pytest.raises(error, match=match):
        find_lr(tmp_path, model, base_params(), loader(), **kwargs)
    assert torch.equal(torch.get_rng_state(), before)


def test_bad_training_params_fail_as_in_train(tmp_path):
    with pytest.raises(ValueError, match=r"training_params: key 'optimizer': .*'SDG'"):
        find_lr(tmp_path, tiny_mlp(0), base_params(optimizer="SDG"), loader())


def test_plot_marks_the_suggestions_and_names_the_extra_without_matplotlib(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    result = find_lr(tmp_path, tiny_mlp(0), base_params(), loader(), start_lr=1e-3, end_lr=50.0, num_iter=60)
    assert set(result.suggestions) == {"valley", "steepest", "min_loss_div10"}
    assert result.suggested_lr == result.suggestions["min_loss_div10"]
    path = result.plot(tmp_path / "curve.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 20_000
    rows = result.write_csv(tmp_path / "curve.csv").read_text().splitlines()
    assert rows[0] == "step,lr,raw_loss,smoothed_loss"
    assert rows[1] == f"0,{result.lrs[0]!r},{result.raw_losses[0]!r},{result.losses[0]!r}"
    assert len(rows) == len(result.lrs) + 1
    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"LRFinderResult.plot needs matplotlib; pip install 'phasetrain\[plots\]'"):
        result.plot(tmp_path / "again.png")
