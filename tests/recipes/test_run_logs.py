"""Run logs: steps.csv and metrics.csv contents, LR logged = LR applied, resume, plots, TensorBoard."""

from __future__ import annotations

import csv
import importlib.util
import sys

import pytest
import torch
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from callbacks import Callback
from trainer import Trainer


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class AppliedLR(Callback):
    """Records the LR (and momentum) of each param group inside optimizer.step(): what is applied."""

    def __init__(self):
        self.lrs: list[list[float]] = []
        self.momenta: list[list[float]] = []

    def on_training_start(self, context):
        context.optimizer.register_step_pre_hook(self._record)

    def _record(self, optimizer, args, kwargs):
        self.lrs.append([group["lr"] for group in optimizer.param_groups])
        self.momenta.append([group["momentum"] for group in optimizer.param_groups])


class DecayEveryStep(Callback):
    """A user schedule: step k uses base / (k + 1) per group and momentum 0.9 - 0.01 k."""

    def on_train_batch_start(self, context):
        if context.opens_step:
            for group in context.optimizer.param_groups:
                group["lr"] = group["initial_lr"] / (context.global_step + 1)
                group["momentum"] = 0.9 - 0.01 * context.global_step


class BatchLosses(Callback):
    """Every training batch's loss, read on the host (fine in a test)."""

    def __init__(self):
        self.losses: list[float] = []

    def on_train_batch_end(self, context):
        self.losses.append(context.loss.item())


def test_steps_csv_has_one_row_per_optimizer_step_with_the_applied_lr(tmp_path):
    applied, losses = AppliedLR(), BatchLosses()
    params = base_params(
        max_epochs=2,
        batch_accumulate=2,
        initial_lr={"0": 0.2, "default": 0.1},
        optimizer_params={"momentum": 0.9},
        zero_weight_decay_on_bias_and_bn=True,
        phase_callbacks=[DecayEveryStep(), applied, losses],
    )
    Trainer("steps", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(5))
    rows = read_rows(tmp_path / "steps" / "steps.csv")
    assert list(rows[0]) == [
        "global_step", "epoch", "batch_idx",
        "lr/0", "lr/0#2", "lr/default", "lr/default#2",
        "momentum/0", "momentum/0#2", "momentum/default", "momentum/default#2",
        "loss",
    ]  # fmt: skip
    # 5 batches, accumulate 2: steps close at batches 1, 3 and 4 (the short last window also steps).
    assert [(int(row["global_step"]), int(row["epoch"]), int(row["batch_idx"])) for row in rows] == [
        (0, 0, 1), (1, 0, 3), (2, 0, 4), (3, 1, 1), (4, 1, 3), (5, 1, 4),
    ]  # fmt: skip
    logged_lrs = [[float(row[f"lr/{name}"]) for name in ("0", "0#2", "default", "default#2")] for row in rows]
    logged_momenta = [[float(row[f"momentum/{name}"]) for name in ("0", "0#2", "default", "default#2")] for row in rows]
    assert logged_lrs == applied.lrs
    assert logged_momenta == applied.momenta
    assert logged_lrs[2] == [0.2 / 3, 0.2 / 3, 0.1 / 3, 0.1 / 3]
    windows = [[0, 1], [2, 3], [4], [5, 6], [7, 8], [9]]
    expected = [torch.tensor([losses.losses[i] for i in window]).mean().item() for window in windows]
    assert [float(row["loss"]) for row in rows] == pytest.approx(expected, rel=1e-6)


def test_metrics_csv_has_one_row_per_epoch(tmp_path):
    accuracy = {"Accuracy": {"task": "multiclass", "num_classes": 3}}
    params = base_params(
        max_epochs=3,
        run_validation_freq=2,
        train_metrics_list=[accuracy],
        valid_metrics_list=[accuracy],
        metric_to_watch="Accuracy",
        phase_callbacks=[DecayEveryStep()],
    )
    result = Trainer("epochs", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))
    rows = read_rows(tmp_path / "epochs" / "metrics.csv")
    assert list(rows[0]) == [
        "epoch", "global_step", "train/loss", "train/Accuracy", "valid/loss", "valid/Accuracy", "lr/default",
        "skipped_steps", "duration_s",
    ]  # fmt: skip
    assert [(row["epoch"], row["global_step"]) for row in rows] == [("0", "3"), ("1", "6"), ("2", "9")]
    assert rows[0]["valid/loss"] == "" and rows[2]["valid/loss"] != ""  # validation after epochs 1 and 2 only
    assert float(rows[2]["train/loss"]) == result.train_metrics["loss"]
    assert float(rows[2]["valid/Accuracy"]) == result.valid_metrics["Accuracy"]
    # The LR of an epoch is the LR of its first optimizer step: 0.1 / (3 e + 1).
    assert [float(row["lr/default"]) for row in rows] == [0.1 / 1, 0.1 / 4, 0.1 / 7]
    assert all(float(row["duration_s"]) >= 0 for row in rows)


class StepRowsOnDisk(Callback):
    """How many rows steps.csv holds at the end of each batch."""

    def __init__(self, path):
        self.path = path
        self.counts: list[int] = []

    def on_train_batch_end(self, context):
        self.counts.append(len(read_rows(self.path)) if self.path.exists() else 0)


def test_step_losses_reach_the_host_in_batches(tmp_path):
    watcher = StepRowsOnDisk(tmp_path / "batched" / "steps.csv")
    params = base_params(max_epochs=2, phase_callbacks=[watcher])
    Trainer("batched", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(4))
    # Nothing is written during an epoch (fewer than 1024 steps pending); each epoch's rows land at its end.
    assert watcher.counts == [0, 0, 0, 0, 4, 4, 4, 4]
    assert len(read_rows(tmp_path / "batched" / "steps.csv")) == 8


def test_resume_rewrites_the_logs_up_to_the_checkpoint_and_continues(tmp_path):
    def run(name, **overrides):
        params = base_params(max_epochs=3, seed=1, optimizer_params={"momentum": 0.9}, **overrides)
        Trainer(name, ckpt_root_dir=str(tmp_path)).train(
            tiny_mlp(), params, tiny_loader(3, shuffle=True), tiny_loader(2)
        )
        return tmp_path / name

    full = run("full")
    resumed = run("resumed", save_ckpt_epoch_list=[0])
    before = read_rows(resumed / "steps.csv")
    assert len(before) == 9
    # Resume from the end of epoch 0: rows of epochs 1 and 2 were written after that checkpoint.
    run("resumed", resume_path=str(resumed / "ckpt_epoch_0.pth"))
    assert read_rows(resumed / "steps.csv") == read_rows(full / "steps.csv")
    without_duration = [
        {k: v for k, v in row.items() if k != "duration_s"} for row in read_rows(resumed / "metrics.csv")
    ]
    assert without_duration == [
        {k: v for k, v in row.items() if k != "duration_s"} for row in read_rows(full / "metrics.csv")
    ]


def test_log_steps_false_writes_no_steps_csv(tmp_path):
    Trainer("quiet", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(log_steps=False), tiny_loader(2))
    assert not (tmp_path / "quiet" / "steps.csv").exists()
    assert (tmp_path / "quiet" / "metrics.csv").exists()


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib")
def test_plots_are_written_at_the_end(tmp_path):
    accuracy = {"Accuracy": {"task": "multiclass", "num_classes": 3}}
    params = base_params(max_epochs=2, plots=True, valid_metrics_list=[accuracy], metric_to_watch="Accuracy")
    Trainer("plotted", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))
    for name in ("lr.png", "loss.png", "metrics.png"):
        assert (tmp_path / "plotted" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_plots_without_matplotlib_is_an_error_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails, as when not installed
    with pytest.raises(
        ImportError, match=r"key 'plots' is True but 'matplotlib' is not installed; pip install 'phasetrain\[plots\]'"
    ):
        Trainer("noplots", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(plots=True), tiny_loader(2))
    assert not (tmp_path / "noplots" / "metrics.csv").exists()


def test_tensorboard_true_without_tensorboard_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(ImportError, match=r"key 'tensorboard' is True but 'tensorboard' is not installed"):
        Trainer("notb", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), base_params(tensorboard=True), tiny_loader(2))


def test_tensorboard_events_carry_the_csv_tags(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    params = base_params(max_epochs=2, tensorboard=True, optimizer_params={"momentum": 0.9})
    Trainer("tb", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"lr/default", "momentum/default", "loss", "epoch", "train/loss", "valid/loss", "duration_s"} <= tags
    assert [event.step for event in events.Scalars("lr/default")] == list(range(6))
    assert [event.step for event in events.Scalars("valid/loss")] == [3, 6]
