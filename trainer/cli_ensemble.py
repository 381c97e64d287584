"""``phasetrain ensemble RUN_DIR [--last K] [--combine auto|softmax|raw]``: evaluate a run's snapshot ensemble.

The model and the validation data come from the run's ``recipe.yaml``; the metrics are its
``valid_metrics_list``. Prints a table of each snapshot's metrics and the ensemble's, and writes
``ensemble.csv`` into the run directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``ensemble`` subcommand to ``commands``; returns its parser."""
    parser = commands.add_parser(
        "ensemble",
        help="evaluate a run's snapshot ensemble (snapshot_ensemble: true)",
        description="Evaluate each ckpt_snapshot_epoch{N}.pth of a run and the ensemble of their mean prediction "
        "on the run's validation data (model and data from RUN_DIR/recipe.yaml); write RUN_DIR/ensemble.csv.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the run directory (holds recipe.yaml and the snapshots)")
    parser.add_argument("--last", type=int, metavar="K", help="use only the last K snapshots")
    parser.add_argument(
        "--combine",
        choices=("auto", "softmax", "raw"),
        default="auto",
        help="average softmax outputs or raw outputs (auto: softmax for CrossEntropyLoss/NLLLoss, else raw)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write ensemble.csv; returns the exit code.

    Raises:
        FileNotFoundError: no recipe.yaml or no snapshots in RUN_DIR.
        ValueError: the recipe has no validation data.
    """
    from trainer.ensemble import ENSEMBLE_CSV, combine_mode_for_loss, evaluate_snapshots
    from trainer.recipe import RECIPE_FILE, build_datasets, build_model, load_recipe

    run_dir = Path(args.run_dir)
    recipe_path = run_dir / RECIPE_FILE
    if not recipe_path.is_file():
        raise FileNotFoundError(
            f"ensemble: {str(run_dir)!r} has no {RECIPE_FILE}; give the directory of a run trained from a recipe."
        )
    recipe = load_recipe(str(recipe_path))
    params = recipe.config["training_hyperparams"]
    model = build_model(recipe)
    _, valid_set = build_datasets(recipe)
    if valid_set is None:
        raise ValueError(f"ensemble: the recipe {str(recipe_path)!r} has no validation data to evaluate on.")
    section = recipe.config["dataloader"]
    loader = torch.utils.data.DataLoader(valid_set, batch_size=section["valid_batch_size"] or section["batch_size"])
    combine = combine_mode_for_loss(params["loss"]) if args.combine == "auto" else args.combine
    device = recipe.config["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
    report = evaluate_snapshots(
        model, run_dir, loader, params.get("valid_metrics_list") or [], combine=combine, device=device, last=args.last
    )
    print(f"snapshot ensemble of {recipe.config['experiment_name']} (mean of {combine} outputs):")
    print(report.table())
    print(f"wrote {report.write_csv(run_dir / ENSEMBLE_CSV)}")
    return 0
