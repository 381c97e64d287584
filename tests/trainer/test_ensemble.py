"""Snapshot-ensemble evaluation: evaluate_snapshots against a hand computation from the saved files,
and ``phasetrain ensemble RUN_DIR``."""

from __future__ import annotations

import csv

import pytest
import torch
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from trainer import Trainer
from trainer.cli import main
from trainer.ensemble import evaluate_snapshots
from trainer.recipe import train_from_recipe

ACCURACY = [{"Accuracy": {"task": "multiclass", "num_classes": 3}}]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    params = base_params(max_epochs=4, snapshot_ensemble=True, snapshot_epochs=[1, 2, 4], initial_lr=0.3)
    Trainer("ens", ckpt_root_dir=str(root)).train(tiny_mlp(), params, tiny_loader(3))
    return root / "ens"


def _by_hand(files, loader, combine):
    """Per file: accuracy of its own outputs; then accuracy of the mean of softmax (or raw) outputs."""
    inputs = torch.cat([batch[0] for batch in loader])
    target = torch.cat([batch[1] for batch in loader])
    model, accuracies, nlls, shares = tiny_mlp(), [], [], []
    for path in files:
        model.load_state_dict(torch.load(path, weights_only=True)["net"])
        with torch.no_grad():
            outputs = model(inputs)
        accuracies.append((outputs.argmax(1) == target).float().mean().item())
        probabilities = outputs.softmax(1)
        nlls.append(-probabilities[torch.arange(len(target)), target].log().mean().item())
        shares.append(probabilities if combine == "softmax" else outputs)
    mean = sum(shares[1:], shares[0]) / len(shares)
    if combine == "softmax":
        nlls.append(-mean[torch.arange(len(target)), target].log().mean().item())
    return accuracies, (mean.argmax(1) == target).float().mean().item(), nlls


@pytest.mark.parametrize("combine", ["softmax", "raw"])
def test_ensemble_metric_equals_a_hand_computation(run_dir, combine):
    loader = tiny_loader(6, seed=5)  # 24 held-out samples
    report = evaluate_snapshots(tiny_mlp(seed=9), run_dir, loader, ACCURACY, combine=combine)
    files = [run_dir / f"ckpt_snapshot_epoch{n}.pth" for n in (1, 2, 4)]
    accuracies, ensemble, nlls = _by_hand(files, loader, combine)
    assert [row["model"] for row in report.rows] == [path.name for path in files] + ["ensemble of 3"]
    assert [row["epoch"] for row in report.rows] == [1, 2, 4, ""]
    assert [row["Accuracy"] for row in report.rows] == pytest.approx([*accuracies, ensemble], abs=1e-7)
    if combine == "softmax":
        assert report.metric_names == ["nll", "Accuracy"]
        assert [row["nll"] for row in report.rows] == pytest.approx(nlls, rel=1e-5)
    else:
        assert report.metric_names == ["Accuracy"]
    # The same from a list of files, and only the last two.
    last_two = evaluate_snapshots(tiny_mlp(), [str(path) for path in files], loader, ACCURACY, combine=combine, last=2)
    assert last_two.ensemble["Accuracy"] == pytest.approx(_by_hand(files[1:], loader, combine)[1], abs=1e-7)


def test_ensemble_errors(tmp_path, run_dir):
    with pytest.raises(FileNotFoundError, match=r"ensemble: '.*' holds no ckpt_snapshot_epoch\{N\}.pth"):
        evaluate_snapshots(tiny_mlp(), tmp_path, tiny_loader(1), ACCURACY)
    with pytest.raises(FileNotFoundError, match=r"ensemble: snapshot '.*nope.pth' does not exist"):
        evaluate_snapshots(tiny_mlp(), [tmp_path / "nope.pth"], tiny_loader(1), ACCURACY)
    with pytest.raises(ValueError, match=r"combine: unknown name 'mean'. Valid names: raw, softmax"):
        evaluate_snapshots(tiny_mlp(), run_dir, tiny_loader(1), ACCURACY, combine="mean")
    with pytest.raises(ValueError, match=r"--last must be >= 1, got 0"):
        evaluate_snapshots(tiny_mlp(), run_dir, tiny_loader(1), ACCURACY, last=0)


RECIPE = {
    "experiment_name": "ens_cli",
    "model": {"name": "SmallMLP", "params": {"in_features": 16, "hidden": 8, "num_classes": 4}},
    "dataset": {"name": "synthetic", "params": {"num_samples": 64}},
    "dataloader": {"batch_size": 16},
    "training_hyperparams": {
        "max_epochs": 4,
        "initial_lr": 0.1,
        "lr_mode": "CosineWarmRestartsLRScheduler",
        "restart_period_epochs": 1,
        "snapshot_ensemble": True,
        "loss": "CrossEntropyLoss",
        "valid_metrics_list": [{"Accuracy": {"task": "multiclass", "num_classes": 4}}],
        "metric_to_watch": "Accuracy",
        "silent_mode": True,
        "log_steps": False,
        "tensorboard": False,
    },
}


def test_cli_ensemble_reads_the_run_recipe(tmp_path, capsys):
    result = train_from_recipe({**RECIPE, "ckpt_root_dir": str(tmp_path)})
    run_dir = tmp_path / "ens_cli"
    assert result.ckpt_dir == str(run_dir)
    assert main(["ensemble", str(run_dir), "--last", "3"]) == 0
    out = capsys.readouterr().out
    assert "snapshot ensemble of ens_cli (mean of softmax outputs):" in out
    with open(run_dir / "ensemble.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["model"] for row in rows] == [
        "ckpt_snapshot_epoch2.pth",
        "ckpt_snapshot_epoch3.pth",
        "ckpt_snapshot_epoch4.pth",
        "ensemble of 3",
    ]
    # The CSV holds exactly what evaluate_snapshots computes on the recipe's validation split.
    from trainer.data import synthetic

    _, valid_set = synthetic(num_samples=64)
    loader = torch.utils.data.DataLoader(valid_set, batch_size=16)
    from trainer.models import SmallMLP

    report = evaluate_snapshots(
        SmallMLP(16, 8, 4), run_dir, loader, RECIPE["training_hyperparams"]["valid_metrics_list"], last=3
    )
    assert [float(row["Accuracy"]) for row in rows] == [row["Accuracy"] for row in report.rows]
    assert rows[-1]["model"] in out and f"{report.ensemble['Accuracy']:.4f}" in out


def test_cli_ensemble_without_recipe(tmp_path, capsys):
    assert main(["ensemble", str(tmp_path)]) != 0
    assert f"ensemble: '{tmp_path}' has no recipe.yaml; give the directory of a run" in capsys.readouterr().err


def test_the_docs_example_runs(tmp_path, monkeypatch, capsys):
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "averaging.md"
    (code,) = re.findall(r"^```python\n(.*?)^```", doc.read_text(), flags=re.S | re.M)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(doc), "exec"), {"__name__": "averaging_doc"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "epoch", "nll", "Accuracy"]
    assert [line.split()[0] for line in lines[1:]] == [
        "ckpt_snapshot_epoch2.pth",
        "ckpt_snapshot_epoch4.pth",
        "ckpt_snapshot_epoch6.pth",
        "ensemble",
    ]
