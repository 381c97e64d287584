"""The ``find-lr`` and ``compare`` subcommands of ``phasetrain`` (trainer/cli.py wires them in).

phasetrain find-lr RECIPE [key=value ...] [--start-lr --end-lr --num-iter --mode --csv --png]
phasetrain compare RUN_DIR [RUN_DIR ...] [--png PATH] [--metric NAME --mode max|min]
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

EXIT_NO_SUGGESTION = 1
LR_FIND_CSV = "lr_find.csv"
LR_FIND_PNG = "lr_find.png"


def add_find_lr_parser(commands: Any, recipe_help: str, overrides_help: str) -> argparse.ArgumentParser:
    """Add ``find-lr`` to the subcommands; returns its parser."""
    find_lr = commands.add_parser(
        "find-lr",
        help="LR range test: sweep the LR up on the recipe's model and data and suggest one",
        description="Take one optimizer step per LR from --start-lr to --end-lr on the recipe's model, data and "
        "optimizer; print the suggested LRs and the override that uses one; write the curve as CSV and PNG. "
        "The recipe is not changed. See docs/lr_finder.md.",
    )
    find_lr.add_argument("recipe", help=recipe_help)
    find_lr.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    find_lr.add_argument("--start-lr", type=float, default=1e-7, help="LR of the first step (default 1e-7)")
    find_lr.add_argument("--end-lr", type=float, default=10.0, help="LR of the last step (default 10)")
    find_lr.add_argument("--num-iter", type=int, default=100, help="optimizer steps of the sweep (default 100)")
    find_lr.add_argument("--mode", default="exp", help="exp (geometric LR steps, default) or linear")
    find_lr.add_argument("--csv", metavar="PATH", help=f"the curve as CSV (default: <run dir>/{LR_FIND_CSV})")
    find_lr.add_argument(
        "--png", metavar="PATH", help=f"the plot (default: <run dir>/{LR_FIND_PNG} when matplotlib is installed)"
    )
    return find_lr


def add_compare_parser(commands: Any) -> argparse.ArgumentParser:
    """Add ``compare`` to the subcommands; returns its parser."""
    compare = commands.add_parser(
        "compare",
        help="compare finished runs: LR, train loss and validation metric in one picture, best metrics in a table",
        description="Read the runs' metrics.csv and steps.csv (no training); print each run's best metric_to_watch, "
        "its epoch, the final LR and the wall time; draw the LR and smoothed train loss per optimizer step and the "
        "validation metric per epoch, one colour per run.",
    )
    compare.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (<ckpt_root_dir>/<name>)")
    compare.add_argument("--png", metavar="PATH", default="compare.png", help="the picture (default compare.png)")
    compare.add_argument("--metric", help="compare this validation metric instead of each run's metric_to_watch")
    compare.add_argument("--mode", choices=("max", "min"), help="direction of --metric (default: as training)")
    return compare


def run_find_lr(args: argparse.Namespace) -> int:
    """``phasetrain find-lr``: 0 with a suggestion, 1 when the curve gives none (the files are written)."""
    from trainer.lr_suggestions import check_sweep_args
    from trainer.recipe import (
        build_datasets,
        build_loaders,
        build_model,
        is_rank_zero,
        load_recipe,
        resolve_recipe_training_params,
        run_dir_of,
    )
    from trainer.trainer import Trainer, seed_everything

    check_sweep_args(args.start_lr, args.end_lr, args.num_iter, args.mode, 0.05, 5.0)
    if args.png and importlib.util.find_spec("matplotlib") is None:
        raise ImportError(f"--png {args.png}: needs matplotlib; pip install 'phasetrain[plots]'.")
    recipe = load_recipe(args.recipe, args.overrides)
    params = resolve_recipe_training_params(recipe)
    if params.seed is not None:
        seed_everything(params.seed)
    model = build_model(recipe)
    train_set, valid_set = build_datasets(recipe)
    train_loader, _ = build_loaders(recipe, train_set, valid_set, params.seed)
    config = recipe.config
    trainer = Trainer(config["experiment_name"], ckpt_root_dir=config["ckpt_root_dir"], device=config["device"])
    result = trainer.find_lr(
        model,
        dict(config["training_hyperparams"]),
        train_loader,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        num_iter=args.num_iter,
        mode=args.mode,
        progress=True,
    )
    if not is_rank_zero():
        return 0 if result.suggested_lr is not None else EXIT_NO_SUGGESTION
    run_dir = run_dir_of(recipe)
    lines = [
        f"LR range test of {config['experiment_name']}: {len(result.lrs)} optimizer steps from lr "
        f"{args.start_lr:g} to {args.end_lr:g} ({args.mode}); {result.stop_reason}",
        result.table(),
    ]
    if result.suggested_lr is not None:
        overrides = override_line(config["training_hyperparams"], result.suggested_lr)
        replaced = {override.split("=", 1)[0] for override in overrides}
        kept = [override for override in args.overrides if override.split("=", 1)[0] not in replaced]
        lines.append(f"to train with the suggested LR: phasetrain train {' '.join([args.recipe, *kept, *overrides])}")
    lines.append(f"wrote {result.write_csv(args.csv or run_dir / LR_FIND_CSV)}")
    if args.png or importlib.util.find_spec("matplotlib") is not None:
        png = result.plot(args.png or run_dir / LR_FIND_PNG, title=f"LR range test: {config['experiment_name']}")
        lines.append(f"wrote {png}")
    else:
        lines.append("no PNG: matplotlib is not installed (pip install 'phasetrain[plots]')")
    print("\n".join(lines))
    return 0 if result.suggested_lr is not None else EXIT_NO_SUGGESTION


def override_line(training_hyperparams: Mapping[str, Any], lr: float) -> list[str]:
    """The dotted overrides that make a recipe train with peak LR ``lr``.

    A OneCycleLR ``lr_mode`` ({OneCycleLR: {max_lr: ...}}) takes it as ``max_lr``; an
    ``initial_lr`` mapping gets one override per group, each keeping its ratio to the largest;
    otherwise ``initial_lr``.
    """
    lr_mode = training_hyperparams.get("lr_mode")
    if isinstance(lr_mode, Mapping):
        for name in lr_mode:
            if _is_one_cycle(name):
                return [f"training_hyperparams.lr_mode.{name}.max_lr={lr:.3g}"]
    initial_lr = training_hyperparams.get("initial_lr")
    if isinstance(initial_lr, Mapping):
        top = max(initial_lr.values())
        return [
            f"training_hyperparams.initial_lr.{group}={lr * value / top:.3g}" for group, value in initial_lr.items()
        ]
    return [f"training_hyperparams.initial_lr={lr:.3g}"]


def _is_one_cycle(name: str) -> bool:
    import torch

    from registry import TORCH_LR_SCHEDULERS

    scheduler = TORCH_LR_SCHEDULERS.get(name) if name in TORCH_LR_SCHEDULERS else None
    return isinstance(scheduler, type) and issubclass(scheduler, torch.optim.lr_scheduler.OneCycleLR)


def run_compare(args: argparse.Namespace) -> int:
    """``phasetrain compare``: print the table, write the picture."""
    from trainer.compare import load_runs, plot_runs, summary_table

    direction = None if args.mode is None else args.mode == "max"
    if args.mode is not None and args.metric is None:
        raise ValueError(f"--mode {args.mode}: give the metric it applies to with --metric NAME.")
    runs = load_runs(args.run_dirs, metric=args.metric, greater_is_better=direction)
    print(summary_table(runs))
    print(f"wrote {plot_runs(runs, Path(args.png))}")
    return 0
