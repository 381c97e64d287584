"""trainer.compare on the logs of real tiny runs: best metric and its epoch, columns by name, errors."""

from __future__ import annotations

import csv

import pytest
from tiny_fixtures import base_params, tiny_loader, tiny_mlp

from trainer import Trainer
from trainer.compare import load_run, load_runs, plot_runs, summary_table


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two Python-API runs (no recipe.yaml: the checkpoint says what was watched): one param group
    for 3 epochs watching Accuracy, two groups for 2 epochs watching the loss."""
    root = tmp_path_factory.mktemp("compare")
    common = dict(
        valid_metrics_list=[{"Accuracy": {"task": "multiclass", "num_classes": 3}}], plots=False, tensorboard=False
    )
    one = base_params(max_epochs=3, metric_to_watch="Accuracy", **common)
    two = base_params(max_epochs=2, initial_lr={"0": 0.05, "default": 0.2}, lr_mode="CosineLRScheduler", **common)
    for name, params in (("one_group", one), ("two_groups", two)):
        Trainer(name, ckpt_root_dir=str(root), device="cpu").train(
            tiny_mlp(0), params, tiny_loader(num_batches=4), tiny_loader(num_batches=2, seed=1)
        )
    return root


def test_best_metric_epoch_final_lr_and_wall_time_come_from_the_logs(runs):
    one = load_run(runs / "one_group")
    assert (one.metric_to_watch, one.greater_is_better, one.lr_groups) == ("Accuracy", True, ["default"])
    metrics = read_rows(runs / "one_group" / "metrics.csv")
    accuracy = [float(row["valid/Accuracy"]) for row in metrics]
    assert one.best() == (max(accuracy), accuracy.index(max(accuracy)))
    assert one.final_lr() == float(read_rows(runs / "one_group" / "steps.csv")[-1]["lr/default"])
    assert one.wall_time_s() == pytest.approx(sum(float(row["duration_s"]) for row in metrics), abs=1e-9)

    two = load_run(runs / "two_groups")
    assert (two.metric_to_watch, two.greater_is_better, two.lr_groups) == ("loss", False, ["0", "default"])
    losses = [float(row["valid/loss"]) for row in read_rows(runs / "two_groups" / "metrics.csv")]
    assert two.best() == (min(losses), losses.index(min(losses)))
    last = read_rows(runs / "two_groups" / "steps.csv")[-1]
    assert two.final_lr() == max(float(last["lr/0"]), float(last["lr/default"]))

    # An explicit metric wins over the watched one (its direction from the metric itself).
    assert load_run(runs / "two_groups", metric="Accuracy").greater_is_better is True


def test_table_and_picture_of_runs_with_different_lengths_and_groups(runs, tmp_path):
    pytest.importorskip("matplotlib")
    loaded = load_runs([runs / "one_group", runs / "two_groups"])
    table = summary_table(loaded).splitlines()
    assert table[1].split()[:6] == [
        "one_group",
        "Accuracy",
        "(max)",
        f"{loaded[0].best()[0]:.6g}",
        str(loaded[0].best()[1]),
        "3",
    ]
    assert table[2].split()[:6] == [
        "two_groups",
        "loss",
        "(min)",
        f"{loaded[1].best()[0]:.6g}",
        str(loaded[1].best()[1]),
        "2",
    ]
    path = plot_runs(loaded, tmp_path / "compare.png")
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 40_000


def test_runs_with_the_same_name_are_told_apart_by_their_parent(runs, tmp_path):
    copy = tmp_path / "elsewhere" / "one_group"
    copy.mkdir(parents=True)
    for name in ("metrics.csv", "steps.csv", "ckpt_latest.pth"):
        (copy / name).write_bytes((runs / "one_group" / name).read_bytes())
    names = [run.name for run in load_runs([runs / "one_group", copy])]
    assert names == [f"{runs.name}/one_group", "elsewhere/one_group"]


def test_errors_name_the_missing_directory_file_or_metric(runs, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"compare: run directory '.*/missing' does not exist\."):
        load_run(tmp_path / "missing")
    only_metrics = tmp_path / "only_metrics"
    only_metrics.mkdir()
    (only_metrics / "metrics.csv").write_bytes((runs / "one_group" / "metrics.csv").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"has no steps.csv \(one row per optimizer step; log_steps: true\)"):
        load_run(only_metrics)
    with pytest.raises(
        ValueError, match=r"has no valid/Acuracy column; validation metrics: loss, Accuracy\. Did you mean 'Accuracy'\?"
    ):
        load_run(runs / "one_group", metric="Acuracy", greater_is_better=True)
    with pytest.raises(ValueError, match=r"compare: give at least one run directory\."):
        load_runs([])
