"""Micro-benchmark: the per-step cost of the EMA update on workload B's model.

Usage::

    python -m benchmarks.ema_micro            # 7 repeats of 200 updates / 50 training steps
    python -m benchmarks.ema_micro --quick    # fewer

Compared, per optimizer step, on the CNN of workload B (benchmarks/overhead_workloads.py, 1x28x28
inputs, batch 64, SGD with momentum):

- ``train step``: forward, backward, ``optimizer.step()`` and ``zero_grad`` of one batch;
- ``ModelEMA update``: ``callbacks.ema.ModelEMA`` as the loop runs it at TRAIN_BATCH_STEP
  (``CallbackList.fire``: the decay of the update number, one ``torch._foreach_lerp_`` over all
  floating tensors, the copy of non-floating ones);
- ``per-tensor loop``: the same average written as a Python loop of ``ema.mul_(d).add_(w, alpha=1-d)``
  over the state dict (what the fused call replaces).

Each cell is the median (min) over repeats of the mean time per step, in µs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from benchmarks.overhead_workloads import cnn
from callbacks import CallbackList, Phase, PhaseContext
from callbacks.ema import ModelEMA


def _time(function: Callable[[], None], count: int, repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(count):
            function()
        samples.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(samples), min(samples)


def main(argv: list[str] | None = None) -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    updates, steps, repeats = (50, 10, 3) if args.quick else (200, 50, 7)
    torch.manual_seed(0)
    net = cnn()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    inputs, target = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step() -> None:
        loss_fn(net(inputs), target).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    ema = ModelEMA(net, decay=0.9999, decay_type="exp", beta=15)
    callbacks = CallbackList([ema])
    context = PhaseContext("bench", "", torch.device("cpu"), None, net, optimizer, loss_fn, None, None, None, 1, 1, 1)

    def fused() -> None:
        context.global_step += 1
        callbacks.fire(Phase.TRAIN_BATCH_STEP, context)

    pairs = list(zip(ema.ema_net.state_dict().values(), net.state_dict().values()))

    @torch.no_grad()
    def per_tensor() -> None:
        decay = ema.decay_of(context.global_step + 1)
        for averaged, weight in pairs:
            if averaged.is_floating_point():
                averaged.mul_(decay).add_(weight, alpha=1 - decay)
            else:
                averaged.copy_(weight)

    tensors = sum(1 for _ in net.state_dict())
    numel = sum(parameter.numel() for parameter in net.parameters())
    print(
        f"workload B model: {tensors} tensors, {numel} parameters; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print("| per step | µs median (min) |")
    print("|---|---|")
    for name, function, count in [
        ("train step (batch 64)", train_step, steps),
        ("ModelEMA update (fused)", fused, updates),
        ("per-tensor loop", per_tensor, updates),
    ]:
        function()  # warm up
        median, low = _time(function, count, repeats)
        print(f"| {name} | {median:.1f} ({low:.1f}) |")


if __name__ == "__main__":
    main()
