"""Train three digits recipes for a few epochs each and compare their schedules, losses and accuracies.

Run it with ``python examples/compare_schedules.py`` (needs scikit-learn and matplotlib:
``pip install ".[examples]"``). It trains ``digits_cosine``, ``digits_step_warmup`` and
``digits_onecycle`` for 8 epochs each (about 20 s on 2 CPU cores) under ``checkpoints/compare/``,
prints the comparison table and writes ``compare_schedules.png``, the picture in the README. The
same comparison from the shell: ``phasetrain compare checkpoints/compare/digits_*``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer import Trainer
from trainer.compare import RunLogs, load_runs, plot_runs, summary_table

RECIPES = ("digits_cosine", "digits_step_warmup", "digits_onecycle")


def compare_schedules(
    ckpt_root_dir: str = "checkpoints/compare",
    max_epochs: int = 8,
    png: str = "compare_schedules.png",
    max_train_batches: int | None = None,
) -> list[RunLogs]:
    """Train each recipe of ``RECIPES`` (seed 0, silent) and draw the comparison.

    Args:
        ckpt_root_dir: the runs go to ``<ckpt_root_dir>/<recipe>/``.
        max_epochs: epochs of each run (cosine and one-cycle stretch to it; the step decay's
            milestones stay where the recipe puts them: x0.1 from epoch 6 on).
        png: the picture to write.
        max_train_batches: train on this many batches per epoch (None: all 23).

    Returns:
        The runs' logs, as ``trainer.compare.load_runs`` reads them.
    """
    for recipe in RECIPES:
        overrides = [
            f"ckpt_root_dir={ckpt_root_dir}",
            f"training_hyperparams.max_epochs={max_epochs}",
            "training_hyperparams.seed=0",
            "training_hyperparams.silent_mode=true",
            "training_hyperparams.save_model=false",
            "training_hyperparams.plots=false",
            "training_hyperparams.tensorboard=false",
        ]
        if max_train_batches is not None:
            overrides.append(f"training_hyperparams.max_train_batches={max_train_batches}")
        Trainer.train_from_recipe(recipe, overrides)
    runs = load_runs([Path(ckpt_root_dir) / recipe for recipe in RECIPES])
    print(summary_table(runs))
    print(f"wrote {plot_runs(runs, png)}")
    return runs


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt-root-dir", default="checkpoints/compare")
    parser.add_argument("--max-epochs", type=int, default=8)
    parser.add_argument("--png", default="compare_schedules.png")
    parser.add_argument("--max-train-batches", type=int, default=None)
    args = parser.parse_args()
    compare_schedules(args.ckpt_root_dir, args.max_epochs, args.png, args.max_train_batches)
