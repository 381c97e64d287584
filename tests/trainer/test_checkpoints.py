"""Checkpoint files: contents, weights_only loading, which files are written when."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchmetrics
from tiny_fixtures import ScriptedScore, base_params, tiny_loader, tiny_mlp

from callbacks import Callback, load_checkpoint
from trainer import Trainer


class BestFileWatcher(Callback):
    """Reads the 'epoch' of ckpt_best.pth at every TRAIN_EPOCH_START and at the end (None: no file)."""

    def __init__(self, path):
        self.path = path
        self.seen: list[int | None] = []

    def _look(self):
        self.seen.append(torch.load(self.path, weights_only=True)["epoch"] if self.path.exists() else None)

    def on_train_loader_start(self, context):
        self._look()

    def on_training_end(self, context):
        self._look()


def test_checkpoint_contents_load_with_weights_only(tmp_path):
    net = tiny_mlp()
    params = base_params(
        max_epochs=2,
        optimizer_params={"momentum": 0.9},
        train_metrics_list=[{"Accuracy": {"task": "multiclass", "num_classes": 3}}],
        valid_metrics_list=[{"Accuracy": {"task": "multiclass", "num_classes": 3}}],
        metric_to_watch="Accuracy",
    )
    result = Trainer("contents", ckpt_root_dir=str(tmp_path)).train(net, params, tiny_loader(3), tiny_loader(2))
    checkpoint = torch.load(tmp_path / "contents" / "ckpt_latest.pth", weights_only=True)
    assert set(checkpoint) == {
        "net",
        "optimizer_state_dict",
        "epoch",
        "global_step",
        "train_metrics",
        "valid_metrics",
        "metric_to_watch",
        "best_metric",
        "scaler_state_dict",
        "rng_states",
        "training_params",
    }
    assert checkpoint["epoch"] == 2  # the next epoch to run
    assert checkpoint["global_step"] == 6
    assert checkpoint["net"].keys() == net.state_dict().keys()
    assert all(torch.equal(checkpoint["net"][key], value) for key, value in net.state_dict().items())
    assert checkpoint["optimizer_state_dict"]["param_groups"][0]["momentum"] == 0.9
    assert len(checkpoint["optimizer_state_dict"]["state"]) == 4  # a momentum buffer per tensor
    assert checkpoint["train_metrics"] == result.train_metrics
    assert list(checkpoint["train_metrics"]) == ["loss", "Accuracy"]
    assert checkpoint["valid_metrics"] == result.valid_metrics
    assert checkpoint["metric_to_watch"] == "Accuracy"
    assert checkpoint["best_metric"] == result.best_metric
    assert checkpoint["scaler_state_dict"] == {}  # GradScaler disabled on the CPU
    assert set(checkpoint["rng_states"]) == {"torch", "python", "numpy"}
    assert checkpoint["training_params"]["max_epochs"] == 2
    assert checkpoint["training_params"]["optimizer_params"] == {"momentum": 0.9}
    assert checkpoint["training_params"]["valid_metrics_list"] == [
        {"Accuracy": {"task": "multiclass", "num_classes": 3}}
    ]
    doc = (Path(__file__).resolve().parents[2] / "docs" / "training_loop.md").read_text()
    section = doc.split("## Checkpoints", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    assert documented == list(checkpoint)  # docs/training_loop.md lists the keys in order


def test_best_checkpoint_written_only_when_the_metric_improves(tmp_path):
    best_path = tmp_path / "best" / "ckpt_best.pth"
    watcher = BestFileWatcher(best_path)
    params = base_params(
        max_epochs=4,
        valid_metrics_list=[ScriptedScore([0.5, 0.25, 0.75, 0.75])],
        metric_to_watch="ScriptedScore",
        phase_callbacks=[watcher],
    )
    result = Trainer("best", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))
    # Written after epoch 0 (first value) and epoch 2 (0.75 > 0.5); not after 0.25, not for an equal 0.75.
    assert watcher.seen == [None, 1, 1, 3, 3]
    best = load_checkpoint(best_path)
    assert (best["best_metric"], best["valid_metrics"]["ScriptedScore"]) == (0.75, 0.75)
    assert result.best_metric == 0.75
    assert load_checkpoint(tmp_path / "best" / "ckpt_latest.pth")["epoch"] == 4


def test_loss_as_metric_to_watch_lower_is_better(tmp_path):
    params = base_params(max_epochs=3)
    result = Trainer("lossbest", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))
    best = load_checkpoint(tmp_path / "lossbest" / "ckpt_best.pth")
    assert best["metric_to_watch"] == "loss"
    assert best["best_metric"] == result.best_metric == best["valid_metrics"]["loss"]
    assert result.best_metric <= result.valid_metrics["loss"]


def test_epoch_list_and_custom_names(tmp_path):
    params = base_params(
        max_epochs=3, save_ckpt_epoch_list=[0, 2], ckpt_name="last.pth", ckpt_best_name="top.pth", run_validation_freq=2
    )
    Trainer("files", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))
    run_dir = tmp_path / "files"
    checkpoints = sorted(path.name for path in run_dir.iterdir() if ".pth" in path.name)  # logs may lie beside them
    assert checkpoints == ["ckpt_epoch_0.pth", "ckpt_epoch_2.pth", "last.pth", "top.pth"]
    epoch_0 = load_checkpoint(run_dir / "ckpt_epoch_0.pth")
    assert (epoch_0["epoch"], epoch_0["global_step"], epoch_0["valid_metrics"]) == (1, 3, {})  # not validated
    epoch_2 = load_checkpoint(run_dir / "ckpt_epoch_2.pth")
    last = load_checkpoint(run_dir / "last.pth")
    assert (epoch_2["epoch"], epoch_2["global_step"]) == (last["epoch"], last["global_step"]) == (3, 9)
    assert all(torch.equal(epoch_2["net"][key], last["net"][key]) for key in last["net"])
    top = load_checkpoint(run_dir / "top.pth")
    assert top["epoch"] in (2, 3)  # validated after epochs 1 and 2 only
    assert top["best_metric"] == top["valid_metrics"]["loss"]


def test_save_model_false_writes_no_checkpoint(tmp_path):
    params = base_params(max_epochs=2, save_model=False, save_ckpt_epoch_list=[0])
    Trainer("nothing", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))
    assert [path.name for path in tmp_path.rglob("*.pth*")] == []


class Counter(Callback):
    """A stateful callback: its state goes into checkpoints under ``checkpoint_key``."""

    checkpoint_key = "counter_state"

    def __init__(self):
        self.batches = 0

    def on_train_batch_end(self, context):
        self.batches += 1

    def state_dict(self):
        return {"batches": self.batches}

    def load_state_dict(self, state):
        self.batches = state["batches"]


def test_stateful_callback_state_is_saved_and_restored(tmp_path):
    Trainer("stateful", ckpt_root_dir=str(tmp_path)).train(
        tiny_mlp(), base_params(max_epochs=2, phase_callbacks=[Counter()]), tiny_loader(3), tiny_loader(2)
    )
    assert load_checkpoint(tmp_path / "stateful" / "ckpt_latest.pth")["counter_state"] == {"batches": 6}
    resumed = Counter()
    Trainer("stateful", ckpt_root_dir=str(tmp_path)).train(
        tiny_mlp(), base_params(max_epochs=3, resume=True, phase_callbacks=[resumed]), tiny_loader(3), tiny_loader(2)
    )
    assert resumed.batches == 9
    assert load_checkpoint(tmp_path / "stateful" / "ckpt_latest.pth")["counter_state"] == {"batches": 9}


def test_load_checkpoint_refuses_pickled_objects(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"net": {}, "optimizer_state_dict": {}, "epoch": 1, "global_step": 1, "obj": Counter()}, path)
    with pytest.raises(RuntimeError, match=r"is corrupt or not a phasetrain checkpoint \(UnpicklingError"):
        load_checkpoint(path)


class ScriptedError(ScriptedScore):
    """The same, declared lower-is-better (like torchmetrics' error metrics)."""

    higher_is_better = False


class ScriptedUndeclared(ScriptedScore):
    """The same, with no declared direction."""

    higher_is_better = None


def test_metric_direction_comes_from_torchmetrics_higher_is_better(tmp_path):
    params = base_params(
        max_epochs=3, valid_metrics_list=[ScriptedError([0.5, 0.25, 0.75])], metric_to_watch="ScriptedError"
    )
    result = Trainer("lower", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))
    assert result.best_metric == 0.25
    assert load_checkpoint(tmp_path / "lower" / "ckpt_best.pth")["epoch"] == 2
    # torchmetrics declares the direction of its metrics; error metrics are lower-is-better.
    accuracy = torchmetrics.Accuracy(task="multiclass", num_classes=3)
    assert (torchmetrics.MeanSquaredError().higher_is_better, accuracy.higher_is_better) == (False, True)


def test_undeclared_metric_direction_must_be_given(tmp_path):
    params = base_params(
        max_epochs=2, valid_metrics_list=[ScriptedUndeclared([0.5, 0.75])], metric_to_watch="ScriptedUndeclared"
    )
    with pytest.raises(
        ValueError,
        match=r"training_params: key 'greater_metric_to_watch_is_better' is None and metric_to_watch "
        r"'ScriptedUndeclared' does not declare higher_is_better; set it to True or False\.",
    ):
        Trainer("undeclared", ckpt_root_dir=str(tmp_path)).train(tiny_mlp(), params, tiny_loader(3), tiny_loader(2))
    params["greater_metric_to_watch_is_better"] = False
    result = Trainer("undeclared", ckpt_root_dir=str(tmp_path)).train(
        tiny_mlp(), params, tiny_loader(3), tiny_loader(2)
    )
    assert result.best_metric == 0.5
