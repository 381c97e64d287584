"""The ``phasetrain`` command line (also ``python -m trainer``): train, schedule, list.

    phasetrain train RECIPE [key=value ...]
    phasetrain schedule RECIPE [key=value ...] [--csv PATH] [--png PATH]
    phasetrain list

RECIPE is a shipped recipe name (``phasetrain list`` shows them) or a path to a YAML file.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

from recipes import shipped_recipes
from registry import did_you_mean
from trainer import cli_ensemble, cli_errors, cli_tools

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, with the valid commands listed when a command is unknown."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        if "invalid choice" in message and "command" in message:
            message += " Run 'phasetrain --help' for what each does."
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all subcommands."""
    parser = _Parser(
        prog="phasetrain",
        description="Train from YAML recipes, preview their LR schedules, list what recipes can name.",
    )
    parser.add_argument(  # main() takes --debug from anywhere on the line; declared here for --help
        "--debug", action="store_true", help="show the traceback of every error (or set PHASETRAIN_DEBUG=1)"
    )
    commands = parser.add_subparsers(
        dest="command", metavar="{train,schedule,find-lr,compare,ensemble,list}", parser_class=_Parser
    )
    commands.required = True
    recipe_help = "a shipped recipe name (see 'phasetrain list') or a path to a recipe YAML file"
    overrides_help = "dotted overrides, e.g. training_hyperparams.max_epochs=5 dataloader.batch_size=32"

    train = commands.add_parser("train", help="train from a recipe", description="Train from a recipe.")
    train.add_argument("recipe", help=recipe_help)
    train.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)

    schedule = commands.add_parser(
        "schedule",
        help="preview the exact per-step LR of a recipe without training",
        description="Print the LR (and changing momentum) every optimizer step of the recipe will use, "
        "computed by the recipe's own LR callbacks on the loop's clock, without training; write it as CSV and PNG.",
    )
    schedule.add_argument("recipe", help=recipe_help)
    schedule.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    schedule.add_argument("--csv", metavar="PATH", help="per-step CSV (default: <run dir>/schedule.csv)")
    schedule.add_argument(
        "--png", metavar="PATH", help="plot (default: <run dir>/schedule.png when matplotlib is installed)"
    )
    schedule.add_argument(
        "--resume-from",
        metavar="CKPT",
        help="preview the steps a resume from this checkpoint runs, under the recipe's resume_schedule",
    )

    listing = commands.add_parser(
        "list", help="list shipped recipes and the names a recipe can use", description="List names."
    )
    find_lr = cli_tools.add_find_lr_parser(commands, recipe_help, overrides_help)
    compare = cli_tools.add_compare_parser(commands)
    ensemble = cli_ensemble.add_parser(commands)
    parser.set_defaults(
        subparsers={
            "train": train,
            "schedule": schedule,
            "find-lr": find_lr,
            "compare": compare,
            "ensemble": ensemble,
            "list": listing,
        }
    )
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors (exit code 2) for a recipe that does not exist and malformed overrides."""
    if getattr(args, "recipe", None) is not None and not Path(args.recipe).is_file():
        shipped = shipped_recipes()
        name = args.recipe[: -len(".yaml")] if args.recipe.endswith(".yaml") else args.recipe
        if name not in shipped:
            parser.error(
                f"argument recipe: {args.recipe!r} is neither a file nor a shipped recipe. "
                f"Shipped recipes: {', '.join(shipped)}.{did_you_mean(name, shipped)}"
            )
    for override in getattr(args, "overrides", None) or []:
        if "=" not in override or override.startswith("="):
            parser.error(
                f"argument key=value: {override!r} is not a dotted key=value override (e.g. training_hyperparams.max_epochs=5)."
            )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 success, 1 failed run, 2 bad input, 130 interrupted).

    A user error is printed once as ``error: <message>``; tracebacks only for crashes, or with
    ``--debug`` / ``PHASETRAIN_DEBUG=1`` (trainer.cli_errors says which is which).
    """
    argv, debug = cli_errors.split_debug_flag(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_arguments(args.subparsers[args.command], args)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "schedule":
            return _schedule(args)
        if args.command == "find-lr":
            return cli_tools.run_find_lr(args)
        if args.command == "compare":
            return cli_tools.run_compare(args)
        if args.command == "ensemble":
            return cli_ensemble.run(args)
        return _list()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (phasetrain schedule ... | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as error:
        return cli_errors.report(error, debug)


def _train(args: argparse.Namespace) -> int:
    from trainer.recipe import RECIPE_FILE, is_rank_zero, train_from_recipe

    result = train_from_recipe(args.recipe, overrides=args.overrides)
    if not is_rank_zero():
        return EXIT_INTERRUPTED if result.interrupted else 0
    run_dir = Path(result.ckpt_dir)
    lines = []
    if result.best_metric is not None:
        lines.append(f"best {result.metric_to_watch}: {result.best_metric:.6g}")
    lines.append(
        f"trained {result.epochs_run} epochs ({result.global_step} optimizer steps in the run); "
        f"last: {_metrics_line(result.train_metrics, result.valid_metrics)}"
    )
    if result.swa_metrics:
        lines.append(f"swa (ckpt_swa.pth): {_metrics_line({}, result.swa_metrics)}")
    lines.append(f"run directory: {run_dir}")
    checkpoints = sorted(path.name for path in run_dir.glob("*.pth"))
    if checkpoints:
        lines.append(f"  checkpoints: {', '.join(checkpoints)}")
    logs = [name for name in (RECIPE_FILE, "metrics.csv", "steps.csv") if (run_dir / name).is_file()]
    if (run_dir / "tensorboard").is_dir():
        logs.append("tensorboard/")
    lines.append(f"  logs: {', '.join(logs)}")
    plots = sorted(path.name for path in run_dir.glob("*.png") if path.name != "schedule.png")
    if plots:
        lines.append(f"  plots: {', '.join(plots)}")
    if result.interrupted:
        recipe_file = run_dir / RECIPE_FILE
        lines.append(f"interrupted; resume with: phasetrain train {recipe_file} training_hyperparams.resume=true")
    print("\n".join(lines))
    return EXIT_INTERRUPTED if result.interrupted else 0


def _metrics_line(train_metrics: dict, valid_metrics: dict) -> str:
    parts = [f"train {name} {value:.4g}" for name, value in train_metrics.items() if isinstance(value, float)]
    parts += [f"valid {name} {value:.4g}" for name, value in valid_metrics.items() if isinstance(value, float)]
    return ", ".join(parts)


def _schedule(args: argparse.Namespace) -> int:
    from trainer.preview import preview_schedule, summary_text, write_csv, write_png
    from trainer.recipe import load_recipe, run_dir_of

    recipe = load_recipe(args.recipe, args.overrides)
    if args.png and importlib.util.find_spec("matplotlib") is None:
        raise ImportError(f"--png {args.png}: needs matplotlib; pip install 'phasetrain[plots]'.")
    preview = preview_schedule(recipe, resume_from=args.resume_from)
    print(summary_text(preview))
    run_dir = run_dir_of(recipe)
    csv_path = write_csv(preview, args.csv or run_dir / "schedule.csv")
    print(f"wrote {csv_path}")
    if args.png or importlib.util.find_spec("matplotlib") is not None:
        print(f"wrote {write_png(preview, args.png or run_dir / 'schedule.png')}")
    else:
        print("no PNG: matplotlib is not installed (pip install 'phasetrain[plots]')")
    return 0


def _list() -> int:
    import schedulers  # noqa: F401  (registers the built-in schedules and warmups)
    import trainer.data  # noqa: F401
    import trainer.models  # noqa: F401
    from registry import DATASETS, LOSSES, LR_SCHEDULERS, LR_WARMUPS, MODELS, OPTIMIZERS, TORCH_LR_SCHEDULERS
    from trainer.recipe import load_recipe

    print("recipes (phasetrain train NAME):")
    for name in shipped_recipes():
        try:
            description = load_recipe(name).config.get("description") or ""
        except Exception as error:  # a broken shipped recipe is shown, not hidden
            description = f"(cannot load: {error})"
        print(f"  {name:<26} {description}")
    sections = [
        ("lr_mode names (training_hyperparams.lr_mode: NAME)", LR_SCHEDULERS),
        ("warmup_mode names", LR_WARMUPS),
        ("torch schedulers (training_hyperparams.lr_mode: {NAME: {...}})", TORCH_LR_SCHEDULERS),
        ("models (model.name)", MODELS),
        ("data sets (dataset.name)", DATASETS),
        ("optimizers (training_hyperparams.optimizer)", OPTIMIZERS),
        ("losses (training_hyperparams.loss)", LOSSES),
    ]
    for title, registry in sections:
        print(f"{title}:")
        print(_wrap(registry.names()))
    return 0


def _wrap(names: list[str], width: int = 100) -> str:
    lines, line = [], "  "
    for name in names:
        if len(line) + len(name) + 2 > width and line.strip():
            lines.append(line.rstrip(", "))
            line = "  "
        line += name + ", "
    lines.append(line.rstrip(", "))
    return "\n".join(lines)
