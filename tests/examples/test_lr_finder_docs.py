"""docs/lr_finder.md and examples/compare_schedules.py: the code runs and the printed output is real."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from trainer.cli import main

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "lr_finder.md"
EXAMPLE = REPO / "examples" / "compare_schedules.py"

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")


def fenced(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_the_python_example_finds_an_lr_then_trains_with_it(tmp_path, monkeypatch, capsys):
    (code,) = fenced("python")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {"__name__": "lr_finder_doc"})
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"diverged at step \d+ \(lr [0-9.e+-]+\): smoothed loss .*", out[0])
    assert out[1].split() == ["suggestion", "lr", "smoothed", "loss"]
    assert [line.split()[0] for line in out[2:5]] == ["valley", "steepest", "min_loss_div10"]
    assert 0.5 < float(out[5]) <= 1.0  # validation accuracy after 2 epochs at the suggested LR
    assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "lr_find.csv").read_text().startswith("step,lr,raw_loss,smoothed_loss\n")


def test_the_documented_find_lr_output_is_what_the_command_prints(tmp_path, monkeypatch, capsys):
    """The command above the digits plot, run as documented, prints the documented lines."""
    command = "phasetrain find-lr digits_cosine training_hyperparams.seed=0 --png docs/img/lr_find_digits.png"
    bash_blocks = fenced("bash")
    assert bash_blocks[0].strip() == command
    documented = fenced("text")[0]
    monkeypatch.chdir(tmp_path)
    assert main(command.split()[1:]) == 0
    assert capsys.readouterr().out == documented
    assert (tmp_path / "docs" / "img" / "lr_find_digits.png").is_file()


def test_the_compare_example_trains_three_recipes_and_draws_them(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("compare_schedules_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    png = tmp_path / "compare.png"
    runs = example.compare_schedules(str(tmp_path / "runs"), max_epochs=3, png=str(png), max_train_batches=14)
    out = capsys.readouterr().out.splitlines()
    assert [run.name for run in runs] == ["digits_cosine", "digits_step_warmup", "digits_onecycle"]
    assert out[0].split()[:3] == ["run", "metric_to_watch", "best"]
    assert [line.split()[0] for line in out[1:4]] == ["digits_cosine", "digits_step_warmup", "digits_onecycle"]
    assert all(line.split()[5:7] == ["3", "42"] for line in out[1:4])  # 3 epochs x 14 steps (warmup: 40)
    assert out[4] == f"wrote {png}"
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 40_000
