"""A torch scheduler inside the Trainer gives, value for value, the LR (and momentum) of the
hand-written loop ``optimizer.step(); scheduler.step()`` with the same scheduler."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from tiny_fixtures import base_params, tiny_loader, tiny_mlp
from torch.optim import lr_scheduler

from callbacks import Callback, Phase, load_checkpoint
from trainer import Trainer

EPOCHS = 4
BATCHES = 5  # with batch_accumulate=2 the last window of each epoch is one micro-batch: S = 3


def halving(epoch: int) -> float:
    """An lr_lambda named by import path in the tests."""
    return 0.5**epoch


class StepRecorder(Callback):
    """Records, right before each optimizer step, the LR and the momentum (or Adam's beta1) of every group."""

    def __init__(self):
        self.lrs: list[tuple[float, ...]] = []
        self.momentums: list[tuple[float, ...]] = []
        self.train_losses: list[float] = []
        self.valid_losses: list[float] = []

    def on_train_batch_gradient_step_start(self, context):
        groups = context.optimizer.param_groups
        self.lrs.append(tuple(group["lr"] for group in groups))
        self.momentums.append(tuple(group["betas"][0] if "betas" in group else group["momentum"] for group in groups))

    def on_train_loader_end(self, context):
        self.train_losses.append(context.train_metrics["loss"])

    def on_validation_loader_end(self, context):
        self.valid_losses.append(context.valid_metrics["loss"])


def train(tmp_path, lr_mode, accumulate=1, valid_loader=None, **overrides):
    recorder = StepRecorder()
    params = base_params(
        max_epochs=EPOCHS,
        optimizer_params={"momentum": 0.9},
        lr_mode=lr_mode,
        batch_accumulate=accumulate,
        phase_callbacks=[recorder],
    )
    params.update(overrides)
    result = Trainer("run", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(BATCHES), valid_loader)
    return recorder, result


def hand_written(make_optimizer, make_scheduler, steps_per_epoch, per_step, epochs=EPOCHS):
    """The reference loop: record the values, step the optimizer, then the scheduler."""
    optimizer = make_optimizer(tiny_mlp())
    scheduler = make_scheduler(optimizer)
    lrs, momentums = [], []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            lrs.append(tuple(group["lr"] for group in optimizer.param_groups))
            momentums.append(
                tuple(group["betas"][0] if "betas" in group else group["momentum"] for group in optimizer.param_groups)
            )
            optimizer.step()
            if per_step:
                scheduler.step()
        if not per_step:
            scheduler.step()
    return lrs, momentums


def sgd(lr=0.1):
    return lambda model: torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


CASES = {
    "OneCycleLR": (
        {"OneCycleLR": {"max_lr": 0.5, "total_steps": "auto"}},
        sgd(),
        lambda opt, n: lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=n),
        True,
    ),
    "CosineAnnealingLR per step": (
        {"CosineAnnealingLR": {"T_max": "auto", "eta_min": 0.001, "phase": "TRAIN_BATCH_STEP"}},
        sgd(),
        lambda opt, n: lr_scheduler.CosineAnnealingLR(opt, T_max=n, eta_min=0.001),
        True,
    ),
    "CyclicLR with momentum": (
        {"CyclicLR": {"base_lr": 0.01, "max_lr": 0.1, "step_size_up": 4, "mode": "triangular2"}},
        sgd(),
        lambda opt, n: lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=4, mode="triangular2"),
        True,
    ),
    "StepLR per epoch": (
        {"StepLR": {"step_size": 2, "gamma": 0.5}},
        sgd(),
        lambda opt, n: lr_scheduler.StepLR(opt, step_size=2, gamma=0.5),
        False,
    ),
    "SequentialLR LinearLR -> CosineAnnealingLR": (
        {
            "SequentialLR": {
                "schedulers": [
                    {"LinearLR": {"start_factor": 0.1, "total_iters": 3}},
                    {"CosineAnnealingLR": {"T_max": "auto"}},
                ],
                "milestones": [3],
                "phase": Phase.TRAIN_BATCH_STEP,
            }
        },
        sgd(),
        lambda opt, n: lr_scheduler.SequentialLR(
            opt,
            [
                lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=3),
                lr_scheduler.CosineAnnealingLR(opt, T_max=n - 3),
            ],
            milestones=[3],
        ),
        True,
    ),
}


@pytest.mark.parametrize("accumulate", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_trainer_matches_hand_written_loop(tmp_path, case, accumulate):
    lr_mode, make_optimizer, make_scheduler, per_step = CASES[case]
    steps_per_epoch = -(-BATCHES // accumulate)
    recorder, result = train(tmp_path, lr_mode, accumulate)
    expected_lrs, expected_momentums = hand_written(
        make_optimizer, lambda opt: make_scheduler(opt, EPOCHS * steps_per_epoch), steps_per_epoch, per_step
    )
    assert len(recorder.lrs) == EPOCHS * steps_per_epoch
    assert recorder.lrs == expected_lrs
    assert recorder.momentums == expected_momentums
    state = load_checkpoint(f"{result.ckpt_dir}/ckpt_latest.pth")["torch_scheduler_state_dict"]
    assert state["state"]["last_epoch"] == (EPOCHS * steps_per_epoch if per_step else EPOCHS)


def test_train_batch_end_steps_once_per_optimizer_step(tmp_path):
    recorder, _ = train(tmp_path, {"OneCycleLR": {"max_lr": 0.5, "total_steps": "auto", "phase": "TRAIN_BATCH_END"}}, 2)
    expected, _ = hand_written(sgd(), lambda opt: lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=12), 3, True)
    assert recorder.lrs == expected


def test_onecycle_cycles_adam_beta1(tmp_path):
    recorder, _ = train(
        tmp_path,
        {"OneCycleLR": {"max_lr": 0.01, "epochs": EPOCHS, "steps_per_epoch": BATCHES}},
        optimizer="Adam",
        optimizer_params={},
    )
    expected_lrs, expected_betas = hand_written(
        lambda model: torch.optim.Adam(model.parameters(), lr=0.1),
        lambda opt: lr_scheduler.OneCycleLR(opt, max_lr=0.01, epochs=EPOCHS, steps_per_epoch=BATCHES),
        BATCHES,
        True,
    )
    assert recorder.lrs == expected_lrs
    assert recorder.momentums == expected_betas
    assert expected_betas[0] == (0.95,) and min(expected_betas) == (0.85,)


def test_two_param_groups_each_follow_their_own_schedule(tmp_path):
    lr_mode = {"CosineAnnealingLR": {"T_max": "auto", "phase": "TRAIN_BATCH_STEP"}}
    recorder, _ = train(tmp_path, lr_mode, initial_lr={"0.": 0.2, "default": 0.1})

    def make_optimizer(model):
        groups = [
            {"params": list(model[0].parameters()), "lr": 0.2},
            {"params": list(model[2].parameters()), "lr": 0.1},
        ]
        return torch.optim.SGD(groups, lr=0.1, momentum=0.9)

    expected, _ = hand_written(make_optimizer, lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=20), BATCHES, True)
    assert recorder.lrs == expected
    assert recorder.lrs[0] == (0.2, 0.1)


def test_lambda_lr_from_import_path(tmp_path):
    recorder, result = train(tmp_path, {"LambdaLR": {"lr_lambda": "test_torch_equivalence:halving"}})
    per_epoch = [recorder.lrs[epoch * BATCHES][0] for epoch in range(EPOCHS)]
    assert per_epoch == [0.1 * halving(epoch) for epoch in range(EPOCHS)]
    assert load_checkpoint(f"{result.ckpt_dir}/ckpt_latest.pth")["torch_scheduler_state_dict"]["state"][
        "lr_lambdas"
    ] == [None]


def test_reduce_on_plateau_steps_on_train_loss(tmp_path):
    lr_mode = {"ReduceLROnPlateau": {"metric_name": "loss", "patience": 0, "factor": 0.5, "threshold": 0.9}}
    recorder, _ = train(tmp_path, lr_mode)
    optimizer = sgd()(tiny_mlp())
    reference = lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5, threshold=0.9)
    expected = []
    for loss in recorder.train_losses:
        expected += [(optimizer.param_groups[0]["lr"],)] * BATCHES
        reference.step(loss)
    assert recorder.lrs == expected
    assert len(set(recorder.lrs)) > 1  # the threshold makes it reduce at least once


def test_reduce_on_plateau_steps_only_after_a_validation(tmp_path):
    lr_mode = {
        "ReduceLROnPlateau": {"metric_name": "loss", "patience": 0, "factor": 0.5, "phase": "VALIDATION_EPOCH_END"}
    }
    recorder, _ = train(tmp_path, lr_mode, run_validation_freq=2, valid_loader=tiny_loader(2, seed=1))
    assert len(recorder.valid_losses) == 2  # epochs 2 and 4
    optimizer = sgd()(tiny_mlp())
    reference = lr_scheduler.ReduceLROnPlateau(optimizer, patience=0, factor=0.5)
    expected = []
    for epoch in range(EPOCHS):
        expected += [(optimizer.param_groups[0]["lr"],)] * BATCHES
        if epoch % 2 == 1:
            reference.step(recorder.valid_losses[epoch // 2])
    assert recorder.lrs == expected


def test_after_step_warmup_the_schedule_starts_from_its_first_value(tmp_path):
    warmup = 4
    recorder, _ = train(tmp_path, {"OneCycleLR": {"max_lr": 0.5, "total_steps": "auto"}}, lr_warmup_steps=warmup)
    total = EPOCHS * BATCHES
    expected_lrs, expected_momentums = hand_written(
        sgd(), lambda opt: lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=total - warmup), total - warmup, True, 1
    )
    assert recorder.lrs[warmup:] == expected_lrs
    assert recorder.momentums[warmup:] == expected_momentums
    assert recorder.momentums[:warmup] == [expected_momentums[0]] * warmup  # not stepped during the warmup


def test_after_epoch_warmup_an_epoch_schedule_starts_from_its_first_value(tmp_path):
    lr_mode = {"LinearLR": {"start_factor": 0.25, "total_iters": 2}}
    recorder, _ = train(tmp_path, lr_mode, lr_warmup_epochs=2, warmup_initial_lr=0.01)
    expected, _ = hand_written(
        sgd(), lambda opt: lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=2), BATCHES, False, EPOCHS - 2
    )
    assert recorder.lrs[2 * BATCHES :] == expected
    assert expected[0] == (0.025,)
    assert recorder.lrs[0] == (0.01,)  # the warmup's


def test_cooldown_holds_the_last_scheduled_lr(tmp_path):
    lr_mode = {"CosineAnnealingLR": {"T_max": "auto", "phase": "TRAIN_BATCH_STEP"}}
    recorder, result = train(tmp_path, lr_mode, lr_cooldown_epochs=1)
    main = (EPOCHS - 1) * BATCHES
    expected, _ = hand_written(sgd(), lambda opt: lr_scheduler.CosineAnnealingLR(opt, T_max=main), main, True, 1)
    assert recorder.lrs[:main] == expected
    assert recorder.lrs[main:] == [expected[-1]] * BATCHES
    state = load_checkpoint(f"{result.ckpt_dir}/ckpt_latest.pth")["torch_scheduler_state_dict"]["state"]
    assert (state["T_max"], state["last_epoch"]) == (main, main - 1)


def test_the_docs_examples_run(tmp_path, monkeypatch):
    docs = Path(__file__).resolve().parents[2] / "docs" / "torch_schedulers.md"
    blocks = re.findall(r"^```python\n(.*?)^```", docs.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 7
    monkeypatch.chdir(tmp_path)
    exec(compile("\n\n".join(blocks), str(docs), "exec"), {"__name__": "torch_schedulers_doc"})
