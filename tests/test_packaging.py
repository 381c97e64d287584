"""A clean install: the wheel holds exactly the design's top-level packages (no ``examples``), and a
shipped recipe that imports a plugin module finds it in the installed packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL_PACKAGES = {"callbacks", "recipes", "registry", "schedulers", "trainer"}
NOT_COPIED = {".venv", ".git", "build", "dist", "checkpoints", "__pycache__", ".pytest_cache", ".ruff_cache"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (setuptools writes build/ and *.egg-info beside
    pyproject.toml; a copy keeps that away from the checkout)."""
    source = tmp_path_factory.mktemp("source") / "phasetrain"
    shutil.copytree(
        REPO,
        source,
        ignore=lambda _, names: [name for name in names if name in NOT_COPIED or name.endswith(".egg-info")],
    )
    command = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        "-w",
        "dist",
        ".",
    ]
    completed = subprocess.run(command, cwd=source, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    (built,) = (source / "dist").glob("phasetrain-*.whl")
    return built


def test_wheel_holds_exactly_the_design_top_level_packages(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level_txt,) = [name for name in names if name.endswith(".dist-info/top_level.txt")]
        listed = archive.read(top_level_txt).decode().split()
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == TOP_LEVEL_PACKAGES
    assert sorted(listed) == sorted(TOP_LEVEL_PACKAGES)
    assert not [name for name in names if name.startswith("examples/")]
    # What the shipped recipes need at run time is inside.
    assert {
        "recipes/user_step_scheduler.py",
        "recipes/digits_custom_scheduler.yaml",
        "recipes/presets/digits_base.yaml",
    } <= set(names)


def test_installed_recipe_plugin_registers_user_step_from_any_directory(wheel, tmp_path):
    target = tmp_path / "site"
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert not (target / "examples").exists()
    script = (
        "import recipes, registry\n"
        "from trainer.recipe_loading import load_recipe\n"
        "print(recipes.__file__)\n"
        "cfg = load_recipe('digits_custom_scheduler')\n"
        "print(registry.LR_SCHEDULERS.get('user_step').__module__)\n"
    )
    run = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); exec({script!r})"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [str(target / "recipes" / "__init__.py"), "recipes.user_step_scheduler"]
