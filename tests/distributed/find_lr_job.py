"""An LR range test under torchrun (and once in-process, single), used by test_find_lr_ddp.py.

Each rank writes ``<out>/find_lr_rank<R>.json``: the swept LRs, the smoothed and raw losses, the
suggestions, and the model's weights before and after the test.

Run: ``python -m torch.distributed.run --nproc_per_node=2 tests/distributed/find_lr_job.py --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ddp_job import NUM_CLASSES, NUM_FEATURES, datasets  # noqa: E402

from trainer import Trainer, distributed  # noqa: E402
from trainer.models import SmallMLP  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--accumulate", type=int, default=2)
    parser.add_argument("--num-iter", type=int, default=30)
    return parser.parse_args(argv)


def flat_weights(model: torch.nn.Module) -> list[float]:
    return torch.cat([value.detach().flatten().double() for value in model.state_dict().values()]).tolist()


def run(args: argparse.Namespace) -> dict:
    train_set, _ = datasets()
    loader = distributed.build_loader(train_set, batch_size=args.batch_size, shuffle=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SmallMLP(in_features=NUM_FEATURES, hidden=16, num_classes=NUM_CLASSES)
    before = flat_weights(model)
    params = {"initial_lr": 0.1, "loss": "CrossEntropyLoss", "batch_accumulate": args.accumulate, "silent_mode": True}
    result = Trainer("find_lr", ckpt_root_dir=args.out, device="cpu").find_lr(
        model, params, loader, start_lr=1e-3, end_lr=10.0, num_iter=args.num_iter
    )
    rank, world_size = distributed.rank_and_world_size()
    record = {
        "rank": rank,
        "world_size": world_size,
        "lrs": result.lrs,
        "losses": result.losses,
        "raw_losses": result.raw_losses,
        "suggestions": result.suggestions,
        "weights_before": before,
        "weights_after": flat_weights(model),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"find_lr_rank{rank}.json").write_text(json.dumps(record))
    return record


if __name__ == "__main__":
    run(parse_args())
