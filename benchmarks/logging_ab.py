"""What logging costs per step, in one process: raw loop vs phasetrain with logging off, defaults, defaults + bars.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=1073741824 \\
        python benchmarks/logging_ab.py 7

Workload A's model and data (``overhead_workloads``), 1,000 steps per epoch, 2 epochs. Every round
trains each configuration once, alternating in this one process; the figure is each configuration's
minimum over rounds of the process CPU time per step of the second epoch (other work on the machine
only adds time, so the minimum is the least disturbed run). Differences between the phasetrain
configurations are what their logging costs; see benchmarks/README.md.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead_variants  # noqa: E402
import overhead_workloads  # noqa: E402

CONFIGS = {
    "logging off": {"log_steps": False, "tensorboard": False, "plots": False, "silent_mode": True},
    "defaults": {"silent_mode": True},
    "defaults + bars": {"silent_mode": False},
}
"""Training params on top of ``overhead.py``'s ``pt-defaults`` variant (which leaves logging at its defaults)."""
SPEC = overhead_workloads.Workload("A", overhead_workloads.mlp, (32,), 64, 1000, 10, 2)


def raw_step_seconds(setup) -> float:
    """The hand-written loop; CPU seconds per step of the second epoch."""
    net, criterion = setup.net, torch.nn.CrossEntropyLoss()
    optimizer = overhead_workloads.sgd(net)
    scheduler = overhead_workloads.one_cycle(optimizer, setup.total_steps)
    started = 0.0
    for epoch in range(SPEC.epochs):
        if epoch == 1:
            started = time.process_time()
        for inputs, target in setup.train_loader:
            criterion(net(inputs), target).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
    return (time.process_time() - started) / SPEC.train_batches


def phasetrain_step_seconds(setup, extra: dict) -> float:
    """``Trainer.train`` with ``extra`` params; CPU seconds per step of the second epoch."""
    from callbacks import Callback
    from trainer import Trainer

    window: dict[str, float] = {}

    class SecondEpoch(Callback):
        def on_train_loader_start(self, context) -> None:
            window["started"] = time.process_time()

        def on_train_loader_end(self, context) -> None:
            window["seconds"] = time.process_time() - window["started"]

    params = overhead_variants.phasetrain_params(setup, "pt-defaults")
    params.update(extra, phase_callbacks=[SecondEpoch()])
    with contextlib.redirect_stderr(io.StringIO()):
        Trainer("logging_ab", ckpt_root_dir=tempfile.mkdtemp(), device="cpu").train(
            setup.net, params, setup.train_loader, None
        )
    return window["seconds"] / SPEC.train_batches


def main(rounds: int) -> None:
    torch.set_num_threads(1)
    seconds: dict[str, list[float]] = {"raw loop": [], **{name: [] for name in CONFIGS}}
    for _ in range(rounds):
        for name in seconds:
            setup = overhead_workloads.make_setup(SPEC, "cpu", False, False)
            run = raw_step_seconds(setup) if name == "raw loop" else phasetrain_step_seconds(setup, CONFIGS[name])
            seconds[name].append(run)
    raw, off = min(seconds["raw loop"]), min(seconds["logging off"])
    print("| configuration | µs per step (min) | over raw | over logging off |")
    print("|---|---|---|---|")
    for name, runs in seconds.items():
        best = min(runs)
        over_raw = f"+{(best - raw) * 1e6:.1f} ({best / raw:.3f})" if name != "raw loop" else ""
        over_off = f"{(best - off) * 1e6:+.1f}" if name not in ("raw loop", "logging off") else ""
        print(f"| {name} | {best * 1e6:.1f} | {over_raw} | {over_off} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
