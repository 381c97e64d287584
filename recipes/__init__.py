"""The shipped YAML recipes (package data), found by name."""

from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent


def shipped_recipes() -> list[str]:
    """Names of the shipped recipes (file names without .yaml)."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))
