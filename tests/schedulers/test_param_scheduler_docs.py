"""docs/param_schedules.md: its example runs, its YAML is the shipped recipe's, its picture and numbers hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from recipes import RECIPES_DIR
from trainer.preview import preview_schedule

DOC = Path(__file__).resolve().parents[2] / "docs" / "param_schedules.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.S)


def test_the_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (code,) = blocks("python")
    exec(compile(code, str(DOC), "exec"), {"__name__": "param_schedules_doc"})
    lines = capsys.readouterr().out.splitlines()
    # warmup 0.01 -> 0.1 over steps 0-3; the converted cosine (begin epoch 1 = step 6) starts at the value it finds
    assert lines[0] == "[0.01, 0.04, 0.07, 0.1, 0.1, 0.1, 0.1]"
    assert lines[1] == "[0.0001, 0.0001, 5e-05, 5e-05]"


def test_the_yaml_is_the_shipped_recipes_schedule():
    shipped = yaml.safe_load((RECIPES_DIR / "digits_mmengine_style.yaml").read_text())["training_hyperparams"]
    documented = yaml.safe_load(blocks("yaml")[0])["training_hyperparams"]
    for key, value in documented.items():
        assert shipped[key] == value, key


def test_the_picture_exists_and_the_stated_peak_holds(tmp_path):
    assert (DOC.parent / "img" / "preview_digits_mmengine_style.png").is_file()
    preview = preview_schedule("digits_mmengine_style", [f"ckpt_root_dir={tmp_path}"])
    lrs = preview.values["lr/default"]
    assert preview.steps_per_epoch == 23
    assert max(lrs) == lrs[29] == pytest.approx(0.04993, abs=5e-6)
    assert set(preview.values) == {"lr/default", "momentum/default", "weight_decay/default"}
