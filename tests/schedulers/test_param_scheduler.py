"""param_scheduler in training: exact resume (plateau counters included), checkpoint checks, logs, restarts."""

from __future__ import annotations

import csv

import pytest
import torch
from tiny_fixtures import ScriptedScore, base_params, tiny_loader, tiny_mlp

from callbacks import Callback, load_checkpoint
from schedulers.param_scheduler import ParamSchedulerCallback
from schedulers.param_scheduler_config import parse_entries, resolve_segments
from trainer import Trainer

SCHEDULE = [
    {"type": "LinearLR", "start_factor": 0.25, "by_epoch": False, "end": 4},
    {"type": "ReduceOnPlateauLR", "monitor": "score", "rule": "greater", "factor": 0.5, "patience": 0, "begin": 1},
    {"type": "CosineAnnealingMomentum", "eta_min": 0.8, "by_epoch": False},
    {"type": "StepParamScheduler", "param_name": "weight_decay", "step_size": 2, "gamma": 0.5},
]
SCORES = [0.5, 0.6, 0.6, 0.6, 0.7, 0.7]
"""Validation scores: plateaus after epochs 2, 3 (patience 0) and 5; the second half resumes after epoch 2."""


class Applied(Callback):
    """Per optimizer step: lr, momentum and weight_decay the step uses; stops after ``stop_after`` epochs."""

    def __init__(self, stop_after: int | None = None):
        self.stop_after = stop_after
        self.rows: list[tuple[float, float, float]] = []

    def on_train_batch_gradient_step_start(self, context):
        group = context.optimizer.param_groups[0]
        self.rows.append((group["lr"], group["momentum"], group["weight_decay"]))

    def on_train_loader_end(self, context):
        if self.stop_after is not None and context.epoch + 1 == self.stop_after:
            context.stop_training = True


def run(tmp_path, name, recorder, scores, schedule=SCHEDULE, **overrides):
    params = base_params(
        max_epochs=6,
        optimizer_params={"momentum": 0.9, "weight_decay": 1e-3},
        param_scheduler=schedule,
        valid_metrics_list=[{"score": ScriptedScore(scores)}],
        metric_to_watch="score",
        phase_callbacks=[recorder],
        **{"tensorboard": False, **overrides},
    )
    net = tiny_mlp(seed=3)
    result = Trainer(name, ckpt_root_dir=str(tmp_path)).train(
        net, params, tiny_loader(3, shuffle=True), tiny_loader(1, seed=1)
    )
    return net, result


def test_a_stopped_and_resumed_run_follows_the_same_values_and_weights(tmp_path):
    full = Applied()
    full_net, _ = run(tmp_path, "full", full, SCORES)
    first = Applied(stop_after=3)
    run(tmp_path, "split", first, SCORES[:3])
    saved = load_checkpoint(tmp_path / "split" / "ckpt_latest.pth")["param_scheduler_state"]
    assert saved["plateaus"] == {
        "1": {"best": pytest.approx(0.6, abs=1e-7), "num_bad_epochs": 0, "cooldown_counter": 0}
    }
    assert saved["reductions"] == [[3, 1]]
    second = Applied()
    resumed_net, resumed = run(tmp_path, "split", second, SCORES[3:], resume=True)

    assert resumed.global_step == 18
    assert first.rows + second.rows == full.rows
    lrs = [row[0] for row in full.rows]
    # warmup 0.025 -> 0.1 over steps 0-3; halved at the starts of epochs 3 and 4 (plateaus after epochs 2 and 3)
    # and of epoch 6 would be next (after epoch 5): the last epochs use 0.025
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1], rel=1e-12)
    assert lrs[4:9] == [0.1] * 5
    assert lrs[9:12] == [0.05] * 3 and lrs[12:18] == [0.025] * 6
    assert [row[2] for row in full.rows[::3]] == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4], rel=1e-12)
    for a, b in zip(full_net.state_dict().values(), resumed_net.state_dict().values()):
        assert torch.equal(a, b)


def test_a_checkpoint_from_another_param_scheduler_is_an_error(tmp_path):
    run(tmp_path, "other", Applied(stop_after=1), SCORES[:1])
    other = [{"type": "CosineAnnealingLR"}, *SCHEDULE[1:]]
    with pytest.raises(
        RuntimeError,
        match=r"checkpoint's param_scheduler \[LinearLR, ReduceOnPlateauLR, CosineAnnealingMomentum, "
        r"StepParamScheduler\] is another schedule than the current param_scheduler \[CosineAnnealingLR, "
        r"ReduceOnPlateauLR, CosineAnnealingMomentum, StepParamScheduler\]",
    ):
        run(tmp_path, "other", Applied(), SCORES[1:], schedule=other, resume=True)
    with pytest.raises(
        RuntimeError, match=r"trained with param_scheduler \[LinearLR, .*\], but the current param_scheduler is none"
    ):
        run(tmp_path, "other", Applied(), SCORES[1:], schedule=[], resume=True)


def test_a_changed_schedule_that_makes_a_value_jump_warns_with_both_values(tmp_path):
    run(tmp_path, "jump", Applied(stop_after=2), SCORES[:2])
    changed = [*SCHEDULE[:3], {**SCHEDULE[3], "step_size": 1}]
    with pytest.warns(
        UserWarning,
        match=r"param_scheduler gives weight_decay 0\.0005 for optimizer step 5, but the run that wrote the checkpoint "
        r"used 0\.001; weight_decay will jump.*Training params changed since the checkpoint: param_scheduler",
    ):
        run(tmp_path, "jump", Applied(), SCORES[2:], schedule=changed, resume=True)


def test_steps_csv_and_tensorboard_log_every_scheduled_key_as_applied(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    applied = Applied()
    run(tmp_path, "logs", applied, SCORES, tensorboard=True)
    with open(tmp_path / "logs" / "steps.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "global_step",
        "epoch",
        "batch_idx",
        "lr/default",
        "momentum/default",
        "weight_decay/default",
        "loss",
    ]
    logged = [(float(r["lr/default"]), float(r["momentum/default"]), float(r["weight_decay/default"])) for r in rows]
    assert logged == applied.rows
    events = EventAccumulator(str(tmp_path / "logs" / "tensorboard"))
    events.Reload()
    weight_decay = events.Scalars("weight_decay/default")
    assert [event.step for event in weight_decay] == list(range(18))
    assert [event.value for event in weight_decay] == pytest.approx([row[2] for row in applied.rows], rel=1e-6)


def test_both_entry_forms_and_accumulation(tmp_path):
    mmengine_form = [{"type": "MultiStepLR", "milestones": [1, 3], "gamma": 0.5, "by_epoch": False}]
    mapping_form = [{"MultiStepLR": {"milestones": [1, 3], "gamma": 0.5, "by_epoch": False}}]
    runs = []
    for name, schedule in (("mmengine", mmengine_form), ("mapping", mapping_form)):
        applied = Applied()
        params = base_params(
            max_epochs=2,
            optimizer_params={"momentum": 0.9},
            param_scheduler=schedule,
            batch_accumulate=2,
            phase_callbacks=[applied],
            tensorboard=False,
            save_model=False,
        )
        Trainer(name, ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(5))
        runs.append([row[0] for row in applied.rows])
    # 5 batches in windows of 2: 3 optimizer steps per epoch; milestones count optimizer steps.
    assert runs[0] == runs[1] == [0.1, 0.05, 0.05, 0.025, 0.025, 0.025]


def test_adam_momentum_schedules_move_betas0(tmp_path):
    betas = []

    class Betas(Callback):
        def on_train_batch_gradient_step_start(self, context):
            betas.append(context.optimizer.param_groups[0]["betas"])

    params = base_params(
        max_epochs=2,
        optimizer="Adam",
        initial_lr=0.01,
        optimizer_params={"betas": (0.9, 0.99)},
        param_scheduler=[{"type": "StepMomentum", "step_size": 1, "gamma": 0.5}],
        phase_callbacks=[Betas()],
        tensorboard=False,
        save_model=False,
    )
    Trainer("adam", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(2))
    assert betas == [(0.9, 0.99), (0.9, 0.99), (0.45, 0.99), (0.45, 0.99)]


def restart_epochs(schedule, steps_per_epoch, max_epochs):
    optimizer = torch.optim.SGD(tiny_mlp().parameters(), lr=0.1)
    segments = resolve_segments(parse_entries(schedule), steps_per_epoch, max_epochs)
    return ParamSchedulerCallback(schedule, segments, optimizer, steps_per_epoch).restart_epochs()


@pytest.mark.parametrize(
    ("schedule", "steps_per_epoch", "max_epochs", "epochs"),
    [
        # epoch periods 3, 4, 5 from epoch 0: cycles end with epochs 3 and 7 (counted from 1); the last is no restart
        (
            [{"type": "CosineRestartLR", "periods": [3, 4, 5], "restart_weights": [1, 1, 1], "eta_min": 0}],
            4,
            12,
            [3, 7],
        ),
        # begin 2: restarts at epochs 5 and 9 (0-based) -> after epochs 5 and 9 counted from 1
        (
            [{"type": "CosineRestartLR", "periods": [3, 4, 5], "restart_weights": [1, 1, 1], "eta_min": 0, "begin": 2}],
            4,
            14,
            [5, 9],
        ),
        # per step, S = 4: restarts at steps 6 (mid epoch 1) and 16 (start of epoch 4): epochs 2 and 4 from 1
        (
            [
                {
                    "type": "CosineRestartLR",
                    "periods": [6, 10, 8],
                    "restart_weights": [1, 1, 1],
                    "eta_min": 0,
                    "by_epoch": False,
                }
            ],
            4,
            8,
            [2, 4],
        ),
        # converted: periods [2, 2] epochs -> 8-step periods with S = 4: one restart, at the start of epoch 2
        (
            [
                {
                    "type": "CosineRestartLR",
                    "periods": [2, 2],
                    "restart_weights": [1, 1],
                    "eta_min": 0,
                    "convert_to_iter_based": True,
                }
            ],
            4,
            4,
            [2],
        ),
        # a restart at or after the segment's end, and momentum schedules, do not count
        (
            [
                {"type": "CosineRestartLR", "periods": [2, 2], "restart_weights": [1, 1], "eta_min": 0, "end": 2},
                {"type": "CosineRestartMomentum", "periods": [1, 1], "restart_weights": [1, 1], "eta_min": 0},
            ],
            4,
            4,
            [],
        ),
    ],
)
def test_restart_epochs(schedule, steps_per_epoch, max_epochs, epochs):
    assert restart_epochs(schedule, steps_per_epoch, max_epochs) == epochs


def test_a_plateau_counts_the_first_validation_as_the_best_even_beyond_1e9(tmp_path):
    """A documented difference (docs/param_schedules.md): MMEngine starts from best = -1e9 for rule greater,
    so a score of -2e9 is never an improvement and it would already reduce after epoch 0 (0.1, 0.05, 0.025)."""
    applied = Applied()
    schedule = [
        {
            "type": "ReduceOnPlateauLR",
            "monitor": "score",
            "rule": "greater",
            "threshold_rule": "abs",
            "threshold": 0.0,
            "factor": 0.5,
            "patience": 0,
        }
    ]
    run(tmp_path, "huge", applied, [-2e9] * 6, schedule=schedule, save_model=False)
    assert [row[0] for row in applied.rows[::3]] == [0.1, 0.1, 0.05, 0.025, 0.0125, 0.00625]


@pytest.mark.parametrize("rule", ["less", "greater"])
def test_the_preview_of_a_plateau_shows_the_run_without_a_plateau_and_says_so(rule):
    from trainer.preview import preview_schedule

    plateau = {"type": "ReduceOnPlateauLR", "monitor": "loss", "rule": rule, "factor": 0.5, "patience": 0}
    recipe = {
        "experiment_name": "plateau_preview",
        "model": {"name": "SmallMLP", "params": {"in_features": 16, "hidden": 8, "num_classes": 4}},
        "dataset": {"name": "synthetic", "params": {"num_samples": 64}},
        "dataloader": {"batch_size": 16},
        "training_hyperparams": {
            "max_epochs": 4,
            "initial_lr": 0.1,
            "param_scheduler": [{"type": "LinearLR", "start_factor": 0.5, "by_epoch": False, "end": 3}, plateau],
            "loss": "CrossEntropyLoss",
        },
    }
    preview = preview_schedule(recipe)
    assert preview.values["lr/default"] == pytest.approx([0.05, 0.075] + [0.1] * 10, rel=1e-12)
    assert any("as if the metric improves every epoch (no plateau)" in note for note in preview.notes)
