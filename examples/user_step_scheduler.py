"""Train with your own LR schedule: SuperGradients' documentation example, registered as "user_step".

The schedule itself, ``UserStepLRCallback`` (unchanged but for its imports), lives in the installed
``recipes.user_step_scheduler`` module, because the shipped recipe ``digits_custom_scheduler``
needs it at run time; importing that module registers ``lr_mode: user_step``. This script trains
with it. It multiplies the LR by each factor in ``user_lr_decay_factors`` once the epoch in
``user_lr_updates`` has ended; its constructor's own parameters are training-param keys.

Run it: ``python examples/user_step_scheduler.py`` trains SmallCNN on the 8x8 digits for a few
epochs and prints the LR each epoch used.
"""

from __future__ import annotations

import argparse
from typing import Any

from torch.utils.data import DataLoader

from callbacks import Callback
from recipes.user_step_scheduler import UserStepLRCallback  # registers "user_step"

__all__ = ["EpochLRRecorder", "UserStepLRCallback", "main"]


class EpochLRRecorder(Callback):
    """Records the LR each epoch trains with (read at its first optimizer step)."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_gradient_step_start(self, context) -> None:
        if context.batch_idx < context.batch_accumulate:
            self.lrs.append(context.optimizer.param_groups[0]["lr"])


def main(
    max_epochs: int = 4, ckpt_root_dir: str = "checkpoints", max_train_batches: int | None = None
) -> dict[str, Any]:
    """Train SmallCNN on digits with lr_mode "user_step": 0.1, x0.1 after epoch 1, x0.1 again after epoch 2.

    Returns:
        {"lrs": the LR of each epoch, "result": the TrainResult}.
    """
    from trainer import Trainer
    from trainer.data import digits
    from trainer.models import SmallCNN

    train_set, valid_set = digits(valid_fraction=0.2, seed=0)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    valid_loader = DataLoader(valid_set, batch_size=256)
    recorder = EpochLRRecorder()
    training_params = {
        "max_epochs": max_epochs,
        "initial_lr": 0.1,
        "lr_mode": "user_step",
        "user_lr_updates": [1, 2],
        "user_lr_decay_factors": [0.1, 0.1],
        "optimizer": "SGD",
        "optimizer_params": {"momentum": 0.9},
        "loss": "CrossEntropyLoss",
        "valid_metrics_list": [{"Accuracy": {"task": "multiclass", "num_classes": 10}}],
        "metric_to_watch": "Accuracy",
        "max_train_batches": max_train_batches,
        "phase_callbacks": [recorder],
        "silent_mode": True,
    }
    result = Trainer("user_step_example", ckpt_root_dir=ckpt_root_dir).train(
        SmallCNN(), training_params, train_loader, valid_loader
    )
    return {"lrs": recorder.lrs, "result": result}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument("--ckpt-root-dir", default="checkpoints")
    parser.add_argument("--max-train-batches", type=int, default=None)
    args = parser.parse_args()
    run = main(args.max_epochs, args.ckpt_root_dir, args.max_train_batches)
    for epoch, lr in enumerate(run["lrs"]):
        print(f"epoch {epoch}: lr {lr:.6g}")
    print(f"best validation Accuracy {run['result'].best_metric:.4f}; checkpoints in {run['result'].ckpt_dir}")
