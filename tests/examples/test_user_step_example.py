"""The SuperGradients documentation example (recipes/user_step_scheduler.py, trained by the script
examples/user_step_scheduler.py) and the runnable code of docs/lr_schedules.md."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry import LR_SCHEDULERS
from schedulers import builtin, lr_param_names
from schedulers.builtin import (
    CosineLRScheduler,
    ExponentialLRScheduler,
    FunctionLRScheduler,
    PolyLRScheduler,
    StepLRScheduler,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "user_step_scheduler.py"
SCHEDULE = REPO / "recipes" / "user_step_scheduler.py"
DOC = REPO / "docs" / "lr_schedules.md"
FROM_EXAMPLE = "<!-- from recipes/user_step_scheduler.py -->"


@pytest.fixture(scope="module")
def example():
    """The example script loaded from its file (``examples/`` is plain scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("user_step_example_script", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_trains_with_user_step_through_the_trainer(example, tmp_path):
    run = example.main(max_epochs=3, ckpt_root_dir=str(tmp_path), max_train_batches=4)
    # user_lr_updates [1, 2], factors [0.1, 0.1]: the LR computed after epoch e is epoch e + 1's.
    assert run["lrs"] == [0.1, 0.1, 0.1 * 0.1]
    assert run["result"].global_step == 12
    assert (tmp_path / "user_step_example" / "ckpt_latest.pth").is_file()


def test_example_is_registered_and_its_params_are_training_params(example):
    schedule = importlib.import_module("recipes.user_step_scheduler")  # as the recipe's `imports` does
    assert example.UserStepLRCallback is schedule.UserStepLRCallback
    assert LR_SCHEDULERS.get("user_step") is schedule.UserStepLRCallback
    assert builtin.lr_class_param_names("user_step") == {"user_lr_updates", "user_lr_decay_factors"}
    assert lr_param_names({"lr_mode": "user_step", "lr_warmup_epochs": 0, "lr_warmup_steps": 0}) == {
        "user_lr_updates",
        "user_lr_decay_factors",
    }


def test_example_runs_as_a_script(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--max-epochs",
            "1",
            "--max-train-batches",
            "2",
            "--ckpt-root-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines()[0] == "epoch 0: lr 0.1"


def doc_python_blocks() -> list[tuple[bool, str]]:
    """(marked as copied from the example, code) for each ```python block of docs/lr_schedules.md."""
    text = DOC.read_text()
    blocks = []
    for match in re.finditer(r"(<!-- [^\n]* -->\n)?```python\n(.*?)```", text, re.S):
        blocks.append((match.group(1) is not None and match.group(1).strip() == FROM_EXAMPLE, match.group(2)))
    return blocks


def test_doc_shows_the_example_verbatim():
    copied = [code for from_example, code in doc_python_blocks() if from_example]
    assert len(copied) == 1
    class_code = copied[0][copied[0].index("@register_lr_scheduler") :]
    assert class_code in SCHEDULE.read_text()


def test_doc_code_blocks_run(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "lr_schedules_doc"}
    runnable = [code for from_example, code in doc_python_blocks() if not from_example]
    assert len(runnable) == 4
    for code in runnable:
        exec(compile(code, str(DOC), "exec"), namespace)
    assert sorted(path.name for path in tmp_path.joinpath("checkpoints").iterdir()) == [
        "cosine_demo",
        "function_demo",
        "groups_demo",
        "user_step_demo",
    ]


@pytest.mark.parametrize(
    "cls", [StepLRScheduler, CosineLRScheduler, PolyLRScheduler, ExponentialLRScheduler, FunctionLRScheduler]
)
def test_doc_states_each_default_and_shows_each_plot(cls):
    text = DOC.read_text()
    assert f"### {cls.__name__}" in text
    assert f"![{cls.__name__}](img/lr_" in text
    for parameter in inspect.signature(cls.__init__).parameters.values():
        if parameter.default not in (None, parameter.empty):
            assert f"`{parameter.name}` (default `{parameter.default!r}`" in text
    for image in re.findall(r"\]\((img/lr_\w+\.png)\)", text):
        assert (DOC.parent / image).is_file()
