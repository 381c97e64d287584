"""DistributedDataParallel overhead: a hand-written DDP loop against phasetrain under torchrun.

Usage::

    python benchmarks/ddp_overhead.py                      # 3 interleaved rounds, workloads A and B, 2 Gloo processes
    python benchmarks/ddp_overhead.py --rounds 5 --workloads A
    python benchmarks/ddp_overhead.py --quick              # 1 round of short epochs (what the test runs)

Each (round, workload, variant) is one ``torchrun --nproc_per_node=2`` launch of this script with
``--worker`` (Gloo on the CPU, ``torch.set_num_threads(1)`` and the allocator settings of
``overhead.py``), interleaved as in ``overhead.py``. Workloads and model are ``overhead.py``'s; each
rank reads half of every epoch.

Variants:

- ``raw-ddp``: a hand-written loop: ``init_process_group("gloo")``, the model in
  ``DistributedDataParallel``, loaders with a ``DistributedSampler`` (shuffle, seed 42; validation
  not shuffled) and ``set_epoch`` every epoch, SGD with OneCycleLR stepped every step, validation
  loss summed over ranks with ``all_reduce`` and a torchmetrics Accuracy (synchronized by torchmetrics).
- ``pt-defaults``: ``Trainer.train`` given the plain shuffled loaders of ``overhead.py``: it shards
  them itself (``shard_loaders``, seed 42, the same order as raw), wraps the model in DDP, and logs
  with its defaults (steps.csv, TensorBoard when installed) on rank 0; progress bars off, no checkpoints.
- ``pt-silent``: the same with ``log_steps`` and ``tensorboard`` off.

Measured on rank 0: the time per optimizer step from the start of the second epoch to the end of
the last validation (the ranks run in lockstep: every step all-reduces the gradients). The table
shows the median (min..max) over rounds of the per-round ratio to raw, and the best-run ratio.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # overhead*.py beside this file, when imported from elsewhere
from overhead import RESULT_PREFIX, WORKER_ENV, machine_line, spread  # noqa: E402

VARIANTS = ["raw-ddp", "pt-defaults", "pt-silent"]
WORKLOADS = ["A", "B"]
SAMPLER_SEED = 42
"""The DistributedSampler seed of raw; phasetrain shards with its ``seed`` training param, 42 by default."""
TARGET = 1.05
COLUMNS = ["workload", "variant", "step ms", "ratio to raw", "best-run ratio", "valid acc"]


# ---------------------------------------------------------------------- worker (one rank)


def run_raw_ddp(setup) -> dict:
    """The hand-written DDP loop."""
    import torch
    import torch.distributed as dist
    from overhead_workloads import accuracy, now, one_cycle, sgd
    from torch.utils.data import DataLoader, DistributedSampler

    dist.init_process_group("gloo")
    net = None
    try:
        train_set, valid_set = setup.train_loader.dataset, setup.valid_loader.dataset
        batch_size = setup.train_loader.batch_size
        train_sampler = DistributedSampler(train_set, shuffle=True, seed=SAMPLER_SEED)
        train_loader = DataLoader(train_set, batch_size=batch_size, sampler=train_sampler)
        valid_loader = DataLoader(
            valid_set, batch_size=batch_size, sampler=DistributedSampler(valid_set, shuffle=False)
        )
        net = torch.nn.parallel.DistributedDataParallel(setup.net)
        optimizer = sgd(net)
        scheduler = one_cycle(optimizer, setup.workload.epochs * len(train_loader))
        criterion = torch.nn.CrossEntropyLoss()
        metric = accuracy()
        started = 0.0
        steps = 0
        for epoch in range(setup.workload.epochs):
            if epoch == 1:
                started = now()
            train_sampler.set_epoch(epoch)
            net.train()
            for inputs, target in train_loader:
                loss = criterion(net(inputs), target)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                steps += epoch >= 1
            net.eval()
            totals = torch.zeros(2)
            with torch.no_grad():
                for inputs, target in valid_loader:
                    preds = net(inputs)
                    totals += torch.stack([criterion(preds, target), torch.tensor(1.0)])
                    metric.update(preds, target)
            dist.all_reduce(totals)
            valid_accuracy = metric.compute().item()
            metric.reset()
        window_s = now() - started
    finally:
        # Free DDP's reducer (it holds the process group) before the group: destroying the group under a
        # live reducer can abort the process at exit (pytorch/pytorch#56297).
        net = None
        gc.collect()
        dist.destroy_process_group()
    return {"window_s": window_s, "timed_steps": steps, "valid_accuracy": valid_accuracy}


def run_phasetrain_ddp(setup, variant: str) -> dict:
    """``Trainer.train`` under torchrun on the plain loaders, timed by a callback."""
    from overhead_variants import phasetrain_params
    from overhead_workloads import now, scratch_dir

    from callbacks import Callback
    from trainer import Trainer

    window: dict = {}
    last_epoch = setup.workload.epochs - 1

    class WindowTimer(Callback):
        def on_train_loader_start(self, context) -> None:
            if context.epoch == 1:
                window["started"], window["first_step"] = now(), context.global_step

        def on_validation_loader_end(self, context) -> None:
            if context.epoch == last_epoch:
                window["window_s"] = now() - window["started"]
                window["steps"] = context.global_step - window["first_step"]

    params = phasetrain_params(setup, "pt-defaults" if variant == "pt-defaults" else "pt-silent")
    params["lr_mode"]["OneCycleLR"]["total_steps"] = setup.workload.epochs * (setup.workload.train_batches // 2)
    params["phase_callbacks"] = [WindowTimer()]
    result = Trainer(f"ddp_{variant}", ckpt_root_dir=scratch_dir(), device="cpu").train(
        setup.net, params, setup.train_loader, setup.valid_loader
    )
    return {
        "window_s": window["window_s"],
        "timed_steps": window["steps"],
        "valid_accuracy": result.valid_metrics["Accuracy"],
    }


def run_worker(args: argparse.Namespace) -> None:
    import torch
    from overhead_workloads import make_setup, workload

    torch.set_num_threads(1)
    setup = make_setup(workload(args.workload, args.quick), "cpu", False, False)
    result = run_raw_ddp(setup) if args.variant == "raw-ddp" else run_phasetrain_ddp(setup, args.variant)
    result["step_ms"] = 1e3 * result["window_s"] / result["timed_steps"]
    if int(os.environ.get("RANK", "0")) == 0:
        print(RESULT_PREFIX + json.dumps(result), flush=True)


# ---------------------------------------------------------------------- driver


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(variant: str, workload: str, args: argparse.Namespace) -> dict:
    """One torchrun launch of two worker ranks; rank 0's result."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(Path(__file__).resolve()),
        "--worker",
        "--variant",
        variant,
        "--workload",
        workload,
        *(["--quick"] if args.quick else []),
    ]
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(WORKER_ENV)
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(
            f"ddp_overhead: {variant} on {workload} failed (exit {completed.returncode}):\n"
            f"{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
        )
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def run_driver(args: argparse.Namespace) -> dict[str, dict[str, list[dict]]]:
    print(f"machine: {machine_line()}; 2 processes, Gloo, torch.set_num_threads(1) per process")
    results = {workload: {variant: [] for variant in args.variants} for workload in args.workloads}
    for round_index in range(args.rounds):
        for workload in args.workloads:
            for variant in args.variants:
                run = launch(variant, workload, args)
                results[workload][variant].append(run)
                print(
                    f"round {round_index + 1}/{args.rounds} {workload} {variant:<12} {run['step_ms']:.4f} ms/step",
                    flush=True,
                )
    print()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for workload, runs in results.items():
        raw = runs["raw-ddp"]
        for variant, samples in runs.items():
            ratios = [run["step_ms"] / base["step_ms"] for run, base in zip(samples, raw)]
            best = min(run["step_ms"] for run in samples) / min(run["step_ms"] for run in raw)
            cells = [
                workload,
                variant,
                spread([run["step_ms"] for run in samples], 4),
                spread(ratios, 3),
                f"{best:.3f}",
                f"{samples[-1]['valid_accuracy']:.4f}",
            ]
            print("| " + " | ".join(cells) + " |")
    print()
    for workload, runs in results.items():
        for variant in (name for name in runs if name != "raw-ddp"):
            ratio = statistics.median(
                run["step_ms"] / base["step_ms"] for run, base in zip(runs[variant], runs["raw-ddp"])
            )
            print(f"{workload} {variant}/raw-ddp {ratio:.4f} <= {TARGET}: {'MET' if ratio <= TARGET else 'MISSED'}")
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of short epochs")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3, 1 with --quick)")
    parser.add_argument("--workloads", type=lambda text: text.split(","), default=WORKLOADS)
    parser.add_argument("--variants", type=lambda text: text.split(","), default=VARIANTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    for name in args.variants:
        if name not in VARIANTS:
            parser.error(f"--variants: unknown variant {name!r}; choose from {', '.join(VARIANTS)}.")
    if "raw-ddp" not in args.variants:
        args.variants.insert(0, "raw-ddp")
    for name in args.workloads:
        if name not in WORKLOADS:
            parser.error(f"--workloads: unknown workload {name!r}; choose from {', '.join(WORKLOADS)}.")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        run_worker(args)
    else:
        run_driver(args)


if __name__ == "__main__":
    main()
