"""The benchmark scripts run end to end (``--quick``) and print tables of the documented shape.

Speed is not asserted here (speed goals live in benchmarks/README.md); only that the scripts work
and that every cell parses, so the benchmarks cannot rot.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SPREAD = re.compile(r"^(\d+\.\d+)(?: \((\d+\.\d+)\.\.(\d+\.\d+)\))?$")
"""A cell "median (min..max)", or one number when there was one round."""


def load_script(name: str):
    """Import ``benchmarks/<name>.py`` as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows(output: str) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the first Markdown table in ``output``."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    assert len(lines) >= 3, output
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    assert all(set(cell) <= {"-"} for cell in split[1]), lines[1]
    return split[0], split[2:]


def parse_spread(cell: str) -> tuple[float, float, float]:
    match = SPREAD.match(cell)
    assert match, f"cell {cell!r} is not 'median (min..max)' nor a number"
    median = float(match.group(1))
    low, high = (float(match.group(2)), float(match.group(3))) if match.group(2) else (median, median)
    assert low <= median <= high, cell
    return median, low, high


def test_overhead_quick_prints_the_documented_table():
    overhead = load_script("overhead")
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "overhead.py"), "--quick"], capture_output=True, text=True, timeout=240
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    output = completed.stdout
    header, rows = table_rows(output)
    assert header == overhead.COLUMNS
    lightning_installed = importlib.util.find_spec("lightning") is not None
    variants = [name for name in overhead.VARIANTS if lightning_installed or name != "lightning"]
    assert [row[:2] for row in rows] == [[workload, variant] for workload in overhead.WORKLOADS for variant in variants]
    if not lightning_installed:
        assert "lightning: skipped (not installed" in output
    for row in rows:
        cells = dict(zip(header, row))
        step_ms, _, _ = parse_spread(cells["step ms"])
        assert step_ms > 0
        ratio, _, _ = parse_spread(cells["ratio to raw"])
        assert float(cells["best-run ratio"]) > 0
        cpu_ratio, _, _ = parse_spread(cells["CPU-time ratio"])
        if cells["variant"] == "raw":
            assert (ratio, cpu_ratio) == (1.0, 1.0)
        assert parse_spread(cells["process wall s"])[0] > 0
        assert float(cells["import s"]) >= 0 and float(cells["peak RSS MiB"]) > 0
        assert 0 <= float(cells["valid acc"]) <= 1
    # The raw loop and the phasetrain OneCycleLR variants train the same trajectory.
    accuracy = {(row[0], row[1]): row[-1] for row in rows}
    for workload in overhead.WORKLOADS:
        for variant in ("pt-defaults", "pt-defaults-bars", "pt-silent", "pt-bars", "pt-bars-log", "raw-again"):
            assert accuracy[workload, variant] == accuracy[workload, "raw"]
    assert "MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=1073741824" in output
    assert "allocator thresholds in effect in every worker: True" in output
    target_lines = [line for line in output.splitlines() if line.endswith((": MET", ": MISSED"))]
    # The default settings are reported first; the machine's noise is stated before the targets.
    assert target_lines[0].startswith("A pt-defaults/raw ")
    assert any(line.startswith("A pt-silent/raw") for line in target_lines)
    assert [line.split(":")[0] for line in output.splitlines() if line.startswith("noise ")] == ["noise A", "noise B"]
    assert any(line.startswith("import trainer beyond torch+torchmetrics") for line in target_lines)


def test_sched_micro_quick_prints_every_case(capsys):
    sched_micro = load_script("sched_micro")
    sched_micro.main(["--quick", "--updates", "50", "--repeats", "2"])
    header, rows = table_rows(capsys.readouterr().out)
    assert header == ["update", "1 group µs", "100 groups µs"]
    assert [row[0] for row in rows] == [
        "builtin CosineLRScheduler",
        "torch CosineAnnealingLR.step()",
        "torch OneCycleLR.step()",
        "wrapped CosineAnnealingLR",
        "param_scheduler CosineAnnealingLR",
        "param_scheduler 3 keys",
    ]
    for row in rows:
        for cell in row[1:]:
            median, low = (float(value) for value in re.match(r"^(\d+\.\d+) \((\d+\.\d+)\)$", cell).groups())
            assert 0 < low <= median


def test_overhead_rejects_unknown_variant_and_workload(capsys):
    overhead = load_script("overhead")
    with pytest.raises(SystemExit):
        overhead.parse_args(["--variants", "raw,pt-silnet"])
    assert "--variants: unknown variant 'pt-silnet'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        overhead.parse_args(["--workloads", "C"])
    assert "--workloads: unknown workload 'C'; choose from A, B." in capsys.readouterr().err
    with pytest.raises(SystemExit):
        overhead.parse_args(["--sync-check"])
    assert "--sync-check: needs --device cuda" in capsys.readouterr().err


def test_ddp_overhead_quick_trains_the_same_trajectory_as_the_hand_written_ddp_loop():
    ddp_overhead = load_script("ddp_overhead")
    command = [sys.executable, str(BENCHMARKS / "ddp_overhead.py"), "--quick", "--workloads", "A"]
    completed = subprocess.run(command + ["--variants", "pt-defaults"], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    header, rows = table_rows(completed.stdout)
    assert header == ddp_overhead.COLUMNS
    assert [row[:2] for row in rows] == [["A", "raw-ddp"], ["A", "pt-defaults"]]
    # phasetrain shards the plain loaders itself with the seed raw gives its DistributedSampler: same data, same result.
    assert rows[0][-1] == rows[1][-1]
    assert parse_spread(rows[0][3])[0] == 1.0
    assert [line for line in completed.stdout.splitlines() if line.endswith(("MET", "MISSED"))][0].startswith(
        "A pt-defaults/raw-ddp "
    )
