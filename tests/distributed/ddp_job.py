"""A user script trained under torchrun by the distributed tests (and once in-process, single).

Each rank writes ``<out>/rank<R>.json`` with what it saw: the LR of every optimizer step, the first
inputs of every epoch, the final weights and metrics. The tests compare these files across ranks
and with a single-process run over the same global data.

Run: ``python -m torch.distributed.run --nproc_per_node=2 tests/distributed/ddp_job.py --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from callbacks import Callback, PhaseContext
from registry import register_callback, register_dataset
from trainer import Trainer, distributed
from trainer.models import SmallMLP

NUM_TRAIN = 256
NUM_VALID = 64
NUM_FEATURES = 8
NUM_CLASSES = 4


def datasets() -> tuple[TensorDataset, TensorDataset]:
    """A seeded Gaussian-blob classification set, the same in every process."""
    generator = torch.Generator().manual_seed(0)
    centers = torch.randn(NUM_CLASSES, NUM_FEATURES, generator=generator) * 1.5
    labels = torch.randint(0, NUM_CLASSES, (NUM_TRAIN + NUM_VALID,), generator=generator)
    features = centers[labels] + torch.randn(NUM_TRAIN + NUM_VALID, NUM_FEATURES, generator=generator)
    return (
        TensorDataset(features[:NUM_TRAIN], labels[:NUM_TRAIN]),
        TensorDataset(features[NUM_TRAIN:], labels[NUM_TRAIN:]),
    )


@register_dataset("ddp_plateau_data")
def plateau_datasets() -> tuple[TensorDataset, TensorDataset]:
    """The same data, with the labels of the odd validation items shifted by one class.

    Under 2 processes rank 0 validates the even items (its loss falls as the model learns) and rank 1
    the odd ones (its loss rises): only the loss reduced over both ranks, which rises from epoch 1 on,
    gives both ranks the same ReduceLROnPlateau decisions.
    """
    train_set, valid_set = datasets()
    features, labels = valid_set.tensors
    labels = labels.clone()
    labels[1::2] = (labels[1::2] + 1) % NUM_CLASSES
    return train_set, TensorDataset(features, labels)


@register_callback("RankLRRecorder")
class RankLRRecorder(Callback):
    """For recipes: writes ``<out_dir>/lrs_world<W>_rank<R>.json``: the LR of every optimizer step and the
    validation loss of every epoch this rank saw.

    Args:
        out_dir: where the file goes.
    """

    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.lrs: list[float] = []
        self.valid_losses: list[float] = []

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        self.lrs.append(context.optimizer.param_groups[0]["lr"])

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self.valid_losses.append(context.valid_metrics["loss"])

    def on_training_end(self, context: PhaseContext) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"lrs": self.lrs, "valid_losses": self.valid_losses, "world_size": context.world_size}
        (self.out_dir / f"lrs_world{context.world_size}_rank{context.rank}.json").write_text(json.dumps(record))


def loaders(batch_size: int, plain: bool) -> tuple[DataLoader, DataLoader]:
    """Sharded loaders: rank r of W reads a seeded permutation's items r, r + W, r + 2W, ...

    ``num_replicas``/``rank`` come from torchrun's environment, so the samplers can be built before
    the trainer joins the process group. In a single process this is one shard of everything,
    which is what makes the single-process run see the same global batches.
    """
    train_set, valid_set = datasets()
    if plain:
        # What a user writes without thinking of torchrun: the trainer shards these (shard_loaders).
        return DataLoader(train_set, batch_size=batch_size, shuffle=True), DataLoader(valid_set, batch_size=batch_size)
    world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    train_sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=3)
    valid_sampler = DistributedSampler(valid_set, num_replicas=world_size, rank=rank, shuffle=False)
    return (
        DataLoader(train_set, batch_size=batch_size, sampler=train_sampler),
        DataLoader(valid_set, batch_size=batch_size, sampler=valid_sampler),
    )


class Recorder(Callback):
    """Records what this rank sees, into ``self.record``."""

    def __init__(self, record: dict):
        self.record = record

    def on_training_start(self, context: PhaseContext) -> None:
        self.record.setdefault("steps_per_epoch", []).append(context.steps_per_epoch)
        self.record.setdefault("total_steps", []).append(context.total_steps)

    def on_train_batch_start(self, context: PhaseContext) -> None:
        if context.batch_idx == 0:
            self.record.setdefault("first_steps", []).append([])
        if context.global_step == context.epoch * context.steps_per_epoch:  # the epoch's first optimizer step
            self.record["first_steps"][-1] += context.inputs[:, 0].tolist()

    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None:
        self.record.setdefault("lrs", []).append([context.global_step, context.optimizer.param_groups[0]["lr"]])

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        self.record.setdefault("valid_metrics", []).append(dict(context.valid_metrics))


class StopAfterEpoch(Callback):
    """Ends training after epoch index ``last_epoch``, like a user stopping a run: on rank 0 only
    (the trainer must stop every rank when any rank asks to)."""

    def __init__(self, last_epoch: int):
        self.last_epoch = last_epoch

    def on_train_loader_end(self, context: PhaseContext) -> None:
        if context.epoch == self.last_epoch and context.rank == 0:
            context.stop_training = True


class FailOnRank(Callback):
    """Raises at TRAIN_BATCH_END of batch 2 of epoch 1, on one rank only."""

    def __init__(self, rank: int):
        self.rank = rank

    def on_train_batch_end(self, context: PhaseContext) -> None:
        if context.rank == self.rank and context.epoch == 1 and context.batch_idx == 2:
            raise RuntimeError(f"boom on rank {context.rank}")


def training_params(args: argparse.Namespace, callbacks: list[Callback]) -> dict:
    return {
        "max_epochs": args.epochs,
        "initial_lr": args.lr,
        "optimizer": "SGD",
        "optimizer_params": {"momentum": 0.9},
        "loss": "CrossEntropyLoss",
        "valid_metrics_list": [{"Accuracy": {"task": "multiclass", "num_classes": NUM_CLASSES}}],
        "metric_to_watch": "Accuracy",
        "batch_accumulate": args.accumulate,
        "lr_mode": "CosineLRScheduler",
        "cosine_final_lr_ratio": 0.1,
        "lr_warmup_steps": 4,
        "phase_callbacks": callbacks,
        "silent_mode": not args.progress,
        "seed": 7,
        "shard_loaders": not args.no_shard,
    }


def train(
    args: argparse.Namespace, ckpt_root: Path, callbacks: list[Callback], resume: bool = False, model_seed: int = 0
):
    """One ``Trainer.train`` of a freshly initialized model; returns (model, TrainResult)."""
    train_loader, valid_loader = loaders(args.batch_size, args.plain_loader)
    torch.manual_seed(model_seed)  # the same initial weights in every run (DDP copies rank 0's to the others)
    model = SmallMLP(NUM_FEATURES, 16, NUM_CLASSES)
    params = training_params(args, callbacks)
    params["resume"] = resume
    result = Trainer("job", ckpt_root_dir=str(ckpt_root), device="cpu").train(model, params, train_loader, valid_loader)
    return model, result


def flat_weights(model: torch.nn.Module) -> list[float]:
    return torch.cat([value.flatten().double() for value in model.state_dict().values()]).tolist()


def teardown_cycles(cycles: int) -> int:
    """Join, wrap, step, reduce, tear down and drop the wrapper, ``cycles`` times, as Trainer.train does.

    Dropping the DDP wrapper right after the group is destroyed, with the last collective's tensor
    just freed, is the moment a reducer-owned Gloo group deadlocks in its destructor; teardown must
    have freed the reducer first. Returns the cycles completed.
    """
    device = torch.device("cpu")
    for _ in range(cycles):
        info = distributed.setup_distributed("cpu")
        net = distributed.wrap_model(torch.nn.Linear(4, 2), device, info)
        net(torch.ones(3, 4)).sum().backward()
        distributed.any_rank(False, device, info)
        distributed.teardown_distributed(info)
        del net
    return cycles


def run(args: argparse.Namespace) -> dict:
    """Train as ``args`` say; return this rank's record (also written to ``<out>/rank<R>.json``)."""
    rank = int(os.environ.get("RANK", "0"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {
        "rank": rank,
        "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    }
    callbacks: list[Callback] = [Recorder(record)]
    if args.fail_on_rank is not None:
        callbacks.append(FailOnRank(args.fail_on_rank))
    ckpt_root = out / (f"ckpt_rank{rank}" if args.ckpt_per_rank else "ckpt")
    model, result = train(args, ckpt_root, callbacks)
    record.update(epochs_run=result.epochs_run, best_metric=result.best_metric, weights=flat_weights(model))
    if args.resume_check:
        # The same run again in the same process: rank 0 stops it after 2 epochs (every rank must
        # stop with it), then a third training resumes it with a fresh model that differs on each
        # rank (every rank must load the checkpoint). Each training needs a new process group.
        resumed: dict = {}
        _, first = train(args, out / "ckpt_resume", [Recorder(resumed), StopAfterEpoch(1)])
        model, second = train(args, out / "ckpt_resume", [Recorder(resumed)], resume=True, model_seed=1000 + rank)
        resumed.update(epochs_run=[first.epochs_run, second.epochs_run], weights=flat_weights(model))
        record["resumed"] = resumed
    if args.teardown_cycles:
        record["teardown_cycles"] = teardown_cycles(args.teardown_cycles)
    record["process_group_initialized"] = torch.distributed.is_initialized()
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    return record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16, help="per-rank batch size")
    parser.add_argument("--accumulate", type=int, default=1, help="batch_accumulate")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--resume-check", action="store_true", help="then train again: stopped after 2 epochs, resumed")
    parser.add_argument("--teardown-cycles", type=int, default=0, help="then this many bare DDP setup/teardown cycles")
    parser.add_argument("--fail-on-rank", type=int, default=None)
    parser.add_argument("--plain-loader", action="store_true", help="loaders without DistributedSampler")
    parser.add_argument("--no-shard", action="store_true", help="shard_loaders: false")
    parser.add_argument("--ckpt-per-rank", action="store_true", help="ckpt_root_dir named by rank, to see who writes")
    parser.add_argument("--progress", action="store_true", help="progress bars and summaries (silent_mode False)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    Path(arguments.out).mkdir(parents=True, exist_ok=True)
    if arguments.progress:
        # This rank's stderr goes to a file of its own, so the test can see who printed what.
        rank_stderr = os.open(
            Path(arguments.out) / f"stderr_rank{os.environ.get('RANK', '0')}.txt", os.O_CREAT | os.O_WRONLY
        )
        os.dup2(rank_stderr, sys.stderr.fileno())
    run(arguments)
