"""Import direction: registry <- callbacks <- schedulers <- trainer, checked on the source (ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("registry", "callbacks", "schedulers", "trainer")
ALLOWED = {
    "registry": set(),
    "callbacks": {"registry"},
    "schedulers": {"registry", "callbacks"},
    "trainer": {"registry", "callbacks", "schedulers"},
}


def imported_packages(path: Path) -> set[str]:
    """The project packages that a module imports (top-level, in functions, under TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(PACKAGES)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_what_lies_below_it(package):
    modules = _modules(package)
    assert modules, f"no modules found in {package}/"
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(imported_packages(path) - ALLOWED[package] - {package})
        for path in modules
    }
    assert {path: bad for path, bad in offenders.items() if bad} == {}


def test_the_checker_sees_imports_of_every_form(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import trainer.params\nfrom callbacks import Phase\nfrom . import local\n"
        "def f():\n    from schedulers.clock import ScheduleClock\n"
    )
    assert imported_packages(module) == {"trainer", "callbacks", "schedulers"}
