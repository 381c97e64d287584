"""The phasetrain command line, called in-process: train, resume, schedule, list, usage errors."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest

from callbacks import Callback
from registry import register_callback
from trainer.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes"))
from recipe_test_helpers import quick, read_rows  # noqa: E402

pytest.importorskip("sklearn")


def test_train_prints_the_best_metric_and_where_everything_is_then_resumes(tmp_path, capsys):
    assert main(["train", "digits_cosine", *quick(tmp_path)]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "digits_cosine"
    assert "best Accuracy: " in out
    assert f"run directory: {run_dir}" in out
    assert "checkpoints: ckpt_best.pth, ckpt_latest.pth" in out
    assert "logs: recipe.yaml, metrics.csv, steps.csv" in out
    assert len(read_rows(run_dir / "steps.csv")) == 8

    # Resume the same run for one more epoch (max_epochs 2 -> 3 changes the cosine; the trainer warns).
    with pytest.warns(UserWarning):
        code = main(["train", "digits_cosine", *quick(tmp_path, max_epochs=3), "training_hyperparams.resume=true"])
    assert code == 0
    assert "trained 1 epochs (12 optimizer steps in the run)" in capsys.readouterr().out
    steps = [int(row["global_step"]) for row in read_rows(run_dir / "steps.csv")]
    assert steps == list(range(12))
    assert [row["epoch"] for row in read_rows(run_dir / "metrics.csv")] == ["0", "1", "2"]


def test_schedule_prints_the_table_and_writes_csv_and_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    csv_path, png_path = tmp_path / "s.csv", tmp_path / "s.png"
    args = ["schedule", "digits_cosine", f"ckpt_root_dir={tmp_path}", "training_hyperparams.max_epochs=4"]
    assert main([*args, "--csv", str(csv_path), "--png", str(png_path)]) == 0
    out = capsys.readouterr().out
    assert "clock: 4 epochs x 23 optimizer steps = 92 steps (1438 training samples, batch_size 64" in out
    assert "warmup: steps 0-22; step 23 (epoch 1) uses lr/default 0.05" in out
    last = 0.0005 + (0.05 - 0.0005) * 0.5 * (1 + math.cos(math.pi * 68 / 69))  # step 91 = t 68 of T 69 cosine steps
    assert f"lr/default: min {last:.6g} at step 91, max 0.05 at step 23" in out
    assert "epoch  first step  lr/default\n0      0           0.025\n1      23          0.05\n" in out
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["global_step", "epoch", "batch_idx", "lr/default"]  # SGD momentum never changes
    assert len(rows) == 92 and float(rows[91]["lr/default"]) == pytest.approx(last, rel=1e-12)
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    # Without --csv/--png the files go to the run directory.
    assert main(args) == 0
    assert (tmp_path / "digits_cosine" / "schedule.csv").is_file()
    assert (tmp_path / "digits_cosine" / "schedule.png").is_file()


def test_list_shows_recipes_and_every_kind_of_name(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "digits_cosine",
        "digits_custom_scheduler",
        "SmallCNN on digits; 1 warmup epoch, then cosine to 1% (the default)",
        "CosineLRScheduler",
        "LinearEpochLRWarmup",
        "OneCycleLR",
        "SmallCNN",
        "synthetic",
        "AdamW",
        "CrossEntropyLoss",
    ):
        assert expected in out, expected
    assert out.index("recipes") < out.index("lr_mode names") < out.index("torch schedulers") < out.index("losses")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "digits_cosin"],
            r"'digits_cosin' is neither a file nor a shipped recipe\. Shipped recipes: .*Did you mean 'digits_cosine'\?",
        ),
        (["schedule", "nothing.yaml"], r"'nothing\.yaml' is neither a file nor a shipped recipe"),
        (["train", "digits_cosine", "max_epochs"], r"'max_epochs' is not a dotted key=value override"),
        (["trian"], r"invalid choice: 'trian' \(choose from .*train.*schedule.*list"),
        ([], r"the following arguments are required: \{train,schedule,[a-z,-]*ensemble,list\}"),
        (["train"], r"the following arguments are required: recipe"),
    ],
)
def test_bad_arguments_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: phasetrain")
    assert __import__("re").search(message, err), err


def test_bad_input_exits_2_with_one_error_line_and_no_traceback(tmp_path, capsys):
    # tests/cli/test_cli_errors.py covers the exit codes in subprocesses.
    assert main(["train", "digits_cosine", f"ckpt_root_dir={tmp_path}", "training_hyperparams.max_epoch=3"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: training_params: unknown key 'max_epoch'")
    assert "Did you mean 'max_epochs'?" in err[0]
    assert main(["schedule", "digits_cosine", "training_hyperparams.lr_mode.CosineLRScheduler=1"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@register_callback("CliTestInterruptAfterFirstEpoch")
class InterruptAfterFirstEpoch(Callback):
    """Ctrl-C, as the user presses it, right after the first epoch's checkpoint."""

    def on_train_loader_start(self, context):
        if context.epoch == 1:
            raise KeyboardInterrupt


def test_an_interrupted_run_prints_the_resume_command_and_exits_130(tmp_path, capsys):
    overrides = [*quick(tmp_path), "training_hyperparams.phase_callbacks=[CliTestInterruptAfterFirstEpoch]"]
    assert main(["train", "digits_onecycle", *overrides]) == 130
    recipe_file = tmp_path / "digits_onecycle" / "recipe.yaml"
    assert (
        f"interrupted; resume with: phasetrain train {recipe_file} training_hyperparams.resume=true"
        in capsys.readouterr().out
    )
    assert (
        main(["train", str(recipe_file), "training_hyperparams.resume=true", "training_hyperparams.phase_callbacks=[]"])
        == 0
    )
    assert [int(row["global_step"]) for row in read_rows(tmp_path / "digits_onecycle" / "steps.csv")] == list(range(8))
