"""benchmarks/ema_micro.py runs (``--quick``) and prints its table with a parseable cell per row."""

from __future__ import annotations

import re

from benchmarks import ema_micro


def test_ema_micro_quick_prints_every_row(capsys):
    ema_micro.main(["--quick"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "---" not in line]
    assert lines[0] == "| per step | µs median (min) |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]
    assert [row[0] for row in rows] == ["train step (batch 64)", "ModelEMA update (fused)", "per-tensor loop"]
    for _, cell in rows:
        median, low = (float(value) for value in re.match(r"^(\d+\.\d+) \((\d+\.\d+)\)$", cell).groups())
        assert 0 < low <= median
