"""``phasetrain find-lr`` and ``phasetrain compare``, called in-process on the shipped digits recipes."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from recipes import shipped_recipes
from trainer.cli import main
from trainer.cli_tools import override_line
from trainer.lr_suggestions import suggest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from recipe_test_helpers import quick, read_rows  # noqa: E402

pytest.importorskip("sklearn")
RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def read_curve(path: Path) -> tuple[list[float], list[float]]:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [float(row["lr"]) for row in rows], [float(row["smoothed_loss"]) for row in rows]


def test_find_lr_prints_the_suggestions_and_the_override_and_writes_the_curve(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    recipe_text = (RECIPES / "digits_cosine.yaml").read_text()
    code = main(["find-lr", "digits_cosine", f"ckpt_root_dir={tmp_path}", "--num-iter", "60", "--start-lr", "1e-5"])
    captured = capsys.readouterr()
    assert code == 0
    run_dir = tmp_path / "digits_cosine"
    lrs, losses = read_curve(run_dir / "lr_find.csv")
    expected = suggest(lrs, losses, 60)
    assert lrs[0] == 1e-5 and len(lrs) == len(losses) >= 40
    out = captured.out
    assert out.startswith(f"LR range test of digits_cosine: {len(lrs)} optimizer steps from lr 1e-05 to 10 (exp); ")
    assert "suggestion                  lr" in out
    assert f"min_loss_div10 (suggested)  {expected.lrs['min_loss_div10']:.3g}" in out
    assert f"valley                      {expected.lrs['valley']:.3g}" in out
    assert (
        f"to train with the suggested LR: phasetrain train digits_cosine ckpt_root_dir={tmp_path} "
        f"training_hyperparams.initial_lr={expected.lrs['min_loss_div10']:.3g}\n"
    ) in out
    assert f"wrote {run_dir / 'lr_find.csv'}\nwrote {run_dir / 'lr_find.png'}" in out
    assert (run_dir / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert "find_lr" in captured.err  # the tqdm bar
    assert (RECIPES / "digits_cosine.yaml").read_text() == recipe_text  # never edited
    assert not list(run_dir.glob("*.pth"))  # no training happened


def test_find_lr_on_a_one_cycle_recipe_prints_the_max_lr_override(tmp_path, capsys):
    csv_path = tmp_path / "curve.csv"
    args = ["find-lr", "digits_onecycle", f"ckpt_root_dir={tmp_path}", "--num-iter", "40", "--start-lr", "1e-4"]
    assert main([*args, "--csv", str(csv_path), "--png", str(tmp_path / "curve.png")]) == 0
    lrs, losses = read_curve(csv_path)
    lr = suggest(lrs, losses, 40).lrs["min_loss_div10"]
    assert f"training_hyperparams.lr_mode.OneCycleLR.max_lr={lr:.3g}\n" in capsys.readouterr().out


def test_override_lines():
    assert override_line({"initial_lr": 0.05}, 0.0123456) == ["training_hyperparams.initial_lr=0.0123"]
    assert override_line({"initial_lr": {"backbone": 0.01, "default": 0.1}}, 0.2) == [
        "training_hyperparams.initial_lr.backbone=0.02",
        "training_hyperparams.initial_lr.default=0.2",
    ]
    one_cycle = {"initial_lr": 0.05, "lr_mode": {"OneCycleLR": {"max_lr": 0.2, "total_steps": "auto"}}}
    assert override_line(one_cycle, 0.03) == ["training_hyperparams.lr_mode.OneCycleLR.max_lr=0.03"]


def test_find_lr_without_a_usable_curve_says_why_and_exits_1(tmp_path, capsys):
    # 12 steps: 1 skipped at the start and 5 at the end leave 6 points, fewer than suggestions need.
    assert main(["find-lr", "digits_cosine", f"ckpt_root_dir={tmp_path}", "--num-iter", "12"]) == 1
    out = capsys.readouterr().out
    assert "no suggestion: too short: 12 points, 6 left after skipping the first 1 and the last 5" in out
    assert "phasetrain train" not in out
    assert (tmp_path / "digits_cosine" / "lr_find.csv").is_file()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--start-lr", "1", "--end-lr", "0.1"], "find_lr: start_lr must be < end_lr, got start_lr=1.0 >= end_lr=0.1"),
        (["--num-iter", "1"], "find_lr: num_iter must be >= 2"),
        (["--mode", "lin"], "find_lr: unknown mode 'lin'; valid modes: exp, linear. Did you mean 'linear'?"),
    ],
)
def test_find_lr_bad_arguments(tmp_path, capsys, extra, match):
    assert main(["find-lr", "digits_cosine", f"ckpt_root_dir={tmp_path}", *extra]) != 0
    assert match in capsys.readouterr().err
    assert not (tmp_path / "digits_cosine").exists()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """digits_cosine for 3 epochs and digits_onecycle for 2 (different lengths), trained for real."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", "digits_cosine", *quick(root, max_epochs=3)]) == 0
    assert main(["train", "digits_onecycle", *quick(root, max_epochs=2)]) == 0
    return root


def test_compare_prints_the_table_and_draws_the_picture(two_runs, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "compare.png"
    capsys.readouterr()
    runs = [str(two_runs / "digits_cosine"), str(two_runs / "digits_onecycle")]
    assert main(["compare", *runs, "--png", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run", "metric_to_watch", "best", "epoch", "epochs", "steps", "final", "lr", "wall", "time", "s",
    ]  # fmt: skip
    for line, name, epochs, steps in ((lines[1], "digits_cosine", 3, 12), (lines[2], "digits_onecycle", 2, 8)):
        metrics = read_rows(two_runs / name / "metrics.csv")
        accuracy = [float(row["valid/Accuracy"]) for row in metrics]
        best_epoch = accuracy.index(max(accuracy))  # the first epoch with the best value
        final_lr = float(read_rows(two_runs / name / "steps.csv")[-1]["lr/default"])
        wall = sum(float(row["duration_s"]) for row in metrics)
        assert line.split() == [
            name, "Accuracy", "(max)", f"{max(accuracy):.6g}", str(best_epoch), str(epochs), str(steps),
            f"{final_lr:.4g}", f"{wall:.1f}",
        ]  # fmt: skip
    assert lines[3] == f"wrote {png}"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 40_000


def test_compare_names_the_missing_run_or_file(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope")]) != 0
    assert f"compare: run directory {str(tmp_path / 'nope')!r} does not exist." in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) != 0
    assert "has no metrics.csv" in capsys.readouterr().err


def test_shipped_recipes_hold_the_compared_ones():
    assert {"digits_cosine", "digits_step_warmup", "digits_onecycle"} <= set(shipped_recipes())
