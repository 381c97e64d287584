"""Helpers shared by the recipe and CLI tests: short-run overrides and an applied-LR recorder."""

from __future__ import annotations

import csv

from callbacks import Callback


def quick(tmp_path, max_epochs: int = 2, max_train_batches: int = 4) -> list[str]:
    """Overrides that make a shipped digits recipe a short, silent run under ``tmp_path``."""
    return [
        f"ckpt_root_dir={tmp_path}",
        f"training_hyperparams.max_epochs={max_epochs}",
        f"training_hyperparams.max_train_batches={max_train_batches}",
        "training_hyperparams.max_valid_batches=2",
        "training_hyperparams.silent_mode=true",
        "training_hyperparams.plots=false",
    ]


def read_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class AppliedLR(Callback):
    """Records each param group's LR, momentum and other scheduled keys inside optimizer.step(): what the
    step applies."""

    def __init__(self):
        self.rows: list[dict[str, float]] = []

    def on_training_start(self, context):
        # Keys a param_scheduler moves besides lr and momentum (weight_decay, ...), logged as <key>/<group>.
        self.other_keys = [key for key in context.scheduled_keys if key not in ("lr", "momentum")]
        context.optimizer.register_step_pre_hook(self._record)

    def _record(self, optimizer, args, kwargs):
        row = {}
        for group in optimizer.param_groups:
            assert f"lr/{group['name']}" not in row, "the shipped recipes have one group per name"
            row[f"lr/{group['name']}"] = group["lr"]
            row[f"momentum/{group['name']}"] = group["momentum"]
            for key in self.other_keys:
                row[f"{key}/{group['name']}"] = group[key]
        self.rows.append(row)
