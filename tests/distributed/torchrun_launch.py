"""Launching real torchrun jobs (2 processes, Gloo on the CPU) from the distributed tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

JOB_DIR = Path(__file__).resolve().parent
REPO_ROOT = JOB_DIR.parents[1]
JOB_SCRIPT = JOB_DIR / "ddp_job.py"


@dataclass
class Launch:
    """A finished torchrun launch."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def check(self) -> Launch:
        if self.returncode != 0:
            raise AssertionError(f"torchrun exited {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}")
        return self


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(args: list[str], nproc: int = 2, timeout: float = 120.0, cwd: Path = REPO_ROOT) -> Launch:
    """``python -m torch.distributed.run --nproc_per_node=N --master_port=<free> ARGS`` in a subprocess.

    ``args`` is a script and its arguments, or ``-m module ...``. Raises AssertionError when it
    outlives ``timeout`` (a hang), so a broken test fails instead of blocking the suite.
    """
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        *args,
    ]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # torchrun starts each worker in a session of its own: kill them by pid, then the agent.
        for pid in [*descendants(process.pid), process.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"torchrun still running after {timeout} s (a hang)\nstdout:\n{stdout}\nstderr:\n{stderr}"
        ) from None
    return Launch(process.returncode, stdout, stderr, time.perf_counter() - started)


def torchrun_nodes(args: list[str], nnodes: int = 2, timeout: float = 180.0, cwd: Path = REPO_ROOT) -> list[Launch]:
    """``nnodes`` torchrun agents on this machine, one process each, as on ``nnodes`` machines:
    ``--nnodes=N --nproc_per_node=1 --node_rank=I --master_addr=127.0.0.1 --master_port=<free>``.

    Every worker has ``LOCAL_RANK`` 0 while its ``RANK`` is its node's rank. Returns the launches,
    node 0 first; raises AssertionError when one outlives ``timeout``.
    """
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])))
    port = free_port()
    processes = []
    started = time.perf_counter()
    for node_rank in range(nnodes):
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nnodes={nnodes}",
            "--nproc_per_node=1",
            f"--node_rank={node_rank}",
            "--master_addr=127.0.0.1",
            f"--master_port={port}",
            *args,
        ]
        processes.append(
            subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    launches = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=max(1.0, timeout - (time.perf_counter() - started)))
        except subprocess.TimeoutExpired:
            for other in processes:
                for pid in [*descendants(other.pid), other.pid]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            outputs = [other.communicate() for other in processes]
            raise AssertionError(f"torchrun nodes still running after {timeout} s (a hang)\n{outputs}") from None
        launches.append(Launch(process.returncode, stdout, stderr, time.perf_counter() - started))
    return launches


def descendants(pid: int) -> list[int]:
    """Pids of every process below ``pid`` (from /proc; empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def read_ranks(out: Path, pattern: str = "rank{}.json", nproc: int = 2) -> list[dict]:
    """The per-rank JSON records a job wrote, rank 0 first."""
    return [json.loads((out / pattern.format(rank)).read_text()) for rank in range(nproc)]
