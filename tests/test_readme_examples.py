"""The README's Python examples run as written (in a fresh process, in a temporary directory)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown: str) -> list[str]:
    """The ```python fenced blocks of a markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def test_readme_python_examples_run(tmp_path):
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 3
    script = tmp_path / "readme_examples.py"
    script.write_text("\n\n".join(blocks))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "readme_digits" / "ckpt_best.pth").is_file()


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    marker = readme.index("<!-- test-command -->")
    fence = readme.index("```bash\n", marker) + len("```bash\n")
    command = readme[fence : readme.index("\n", fence)]
    assert command == 'pip install torch==2.13.0 -e ".[dev]" && python -m pytest -q'
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci and 'eval "$test_command"' in ci
