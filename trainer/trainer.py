"""The Trainer: the training loop, read top to bottom, firing every phase in order."""

from __future__ import annotations

import contextlib
import functools
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import schedulers
from callbacks import (
    Callback,
    CallbackList,
    CheckpointSaver,
    GradientClipping,
    Phase,
    PhaseContext,
    ProgressBar,
)
from callbacks.checkpoint import load_checkpoint, restore_rng_states, unwrap_model
from callbacks.loggers import build_run_loggers
from registry import CALLBACKS, did_you_mean
from trainer import distributed
from trainer.averaging import build_averaging_callbacks, evaluate_module
from trainer.builders import build_loss, build_metrics, build_optimizer
from trainer.guards import TrainLossGuard, check_loader_yield, check_loaders_have_batches, mark_raised_during_training
from trainer.metrics import epoch_metrics
from trainer.params import TrainingParams, resolve_training_params
from trainer.run_names import check_path_component


@dataclass
class TrainResult:
    """What ``Trainer.train`` returns.

    Attributes:
        metric_to_watch: the validation metric that picked the best checkpoint.
        best_metric: its best value (None without validation).
        train_metrics: metrics of the last train epoch.
        valid_metrics: metrics of the last validation.
        test_metrics: {test loader name: metrics}.
        epochs_run: epochs trained by this call (after a resume: since the resume).
        next_epoch: index of the epoch a resume would start with.
        global_step: optimizer steps taken in the whole run.
        ckpt_dir: the run directory (checkpoints and logs).
        interrupted: True when Ctrl-C ended training early.
        swa_metrics: validation metrics of the SWA-averaged model (``swa``; empty without it).
    """

    metric_to_watch: str
    best_metric: float | None
    train_metrics: dict[str, float]
    valid_metrics: dict[str, float]
    test_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    epochs_run: int = 0
    next_epoch: int = 0
    global_step: int = 0
    ckpt_dir: str = ""
    interrupted: bool = False
    swa_metrics: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Trains a model with callbacks fired at every phase.

    Args:
        experiment_name: name of the run; checkpoints go to ``<ckpt_root_dir>/<experiment_name>/``.
            One path component (no separators, not '.' or '..'): a run never writes outside the root.
        ckpt_root_dir: root directory of all runs (any directory).
        device: "cpu", "cuda", "cuda:1", ...; CUDA when available if None (under torchrun,
            ``cuda:LOCAL_RANK``).

    Raises:
        ValueError, TypeError: ``experiment_name`` is not a single path component (trainer.run_names).
    """

    def __init__(
        self, experiment_name: str, ckpt_root_dir: str = "checkpoints", device: str | torch.device | None = None
    ):
        check_path_component(experiment_name, "Trainer", "experiment_name")
        self.experiment_name = experiment_name
        self.ckpt_root_dir = ckpt_root_dir
        self.ckpt_dir = str(Path(ckpt_root_dir) / experiment_name)
        self.requested_device = device

    @staticmethod
    def train_from_recipe(
        recipe: Any, overrides: list[str] | None = None, callbacks: list[Callback] | None = None
    ) -> TrainResult:
        """Train from a YAML recipe: a shipped name ("digits_cosine"), a path, a dict or a DictConfig.

        Args:
            recipe: the recipe; see docs/recipes.md for its keys.
            overrides: dotted ``key=value`` strings applied on top ("training_hyperparams.max_epochs=3").
            callbacks: Callback instances appended to the recipe's ``phase_callbacks``.

        Returns:
            The TrainResult of the run (its ckpt_dir also holds recipe.yaml and the logs).
        """
        from trainer.recipe import train_from_recipe

        return train_from_recipe(recipe, overrides=overrides, callbacks=callbacks)

    def find_lr(
        self,
        model: torch.nn.Module,
        training_params: Mapping[str, Any],
        train_loader: Any,
        start_lr: float = 1e-7,
        end_lr: float = 10.0,
        num_iter: int = 100,
        mode: str = "exp",
        smooth_f: float = 0.05,
        diverge_th: float = 5.0,
        progress: bool | None = None,
    ):
        """The LR range test: one optimizer step per LR from ``start_lr`` up to ``end_lr``, then suggestions.

        Each step trains as ``train`` would (optimizer and its params, loss, param groups, which keep
        their ratio to the largest, batch_accumulate, mixed precision, clip_grad_norm; the LR
        schedule is replaced by the sweep); the loader restarts when ``num_iter`` exceeds it. The
        model, a given optimizer instance and the torch/Python/NumPy RNG states are restored
        afterwards, so ``find_lr`` then ``train`` trains exactly as ``train`` alone. docs/lr_finder.md.

        Args:
            model: the network.
            training_params: the params ``train`` takes (``max_epochs`` may be left out).
            train_loader: DataLoader of (inputs, target) batches.
            start_lr: LR of the first step (> 0).
            end_lr: LR of step ``num_iter - 1`` (> start_lr).
            num_iter: optimizer steps of the sweep (>= 2).
            mode: "exp" (geometric steps) or "linear".
            smooth_f: weight of the newest loss in the smoothed loss, in (0, 1]; 1 = no smoothing.
            diverge_th: stop after the step whose smoothed loss exceeds diverge_th x the best (> 1).
            progress: show a tqdm bar (default: unless ``silent_mode``).

        Returns:
            A ``trainer.lr_finder_result.LRFinderResult`` (lrs, losses, raw_losses, suggestions,
            suggested_lr, diverged_at, plot(path), write_csv(path)).

        Raises:
            ValueError, TypeError: a bad argument or training param, before the first batch.
        """
        from trainer.lr_finder import find_lr

        return find_lr(
            self, model, training_params, train_loader, start_lr, end_lr, num_iter, mode, smooth_f, diverge_th, progress
        )

    # ------------------------------------------------------------------ setup

    def train(
        self,
        model: torch.nn.Module,
        training_params: Mapping[str, Any],
        train_loader: Any,
        valid_loader: Any = None,
        test_loaders: Any = None,
    ) -> TrainResult:
        """Train ``model`` as ``training_params`` say.

        Args:
            model: the network.
            training_params: a dict or OmegaConf config; see ``trainer.params.TRAINING_PARAMS``.
            train_loader: DataLoader of (inputs, target) batches.
            valid_loader: DataLoader for validation, or None.
            test_loaders: a DataLoader, a list of them or {name: DataLoader}, run after training.

        Returns:
            A TrainResult with the best and final metrics and the checkpoint directory.

        Raises:
            ValueError, TypeError: bad training params, an empty loader, an unsafe test loader name, or
                (``resume_schedule: error``) a schedule that differs from the checkpoint's; before the
                first batch.
            FileNotFoundError, RuntimeError: a missing or corrupt checkpoint on resume.
            callbacks.errors.NonFiniteLossError: a NaN/inf training loss (``nonfinite_loss``).
            callbacks.errors.CheckpointWriteError, NonFiniteWeightsError: a checkpoint could not be
                written, or would hold NaN/inf weights; the previous file is unchanged.
        """
        params = resolve_training_params(training_params, extra_known_keys=schedulers.lr_param_names)
        test_loaders = _named_test_loaders(test_loaders)
        named_loaders = {"train_loader": train_loader, "valid_loader": valid_loader}
        for name in test_loaders:
            check_path_component(name, "Trainer.train", "test_loaders name")
        named_loaders.update({f"test_loaders[{name!r}]": loader for name, loader in test_loaders.items()})
        for where, loader in named_loaders.items():
            if loader is not None and not hasattr(loader, "__len__"):
                raise TypeError(
                    f"{where}: needs a length (a DataLoader over a sized dataset), got {type(loader).__name__}."
                )
        check_loaders_have_batches(named_loaders)
        info = distributed.setup_distributed(self.requested_device)
        try:
            if params.shard_loaders:  # under torchrun, plain DataLoaders get a DistributedSampler
                named_loaders = distributed.shard_plain_loaders(named_loaders, info, params.seed or 0)
                train_loader, valid_loader = named_loaders.pop("train_loader"), named_loaders.pop("valid_loader")
                test_loaders = {name: named_loaders[f"test_loaders[{name!r}]"] for name in test_loaders}
            context, callbacks, metrics = self._prepare(model, params, train_loader, valid_loader, info)
            return self._run(context, callbacks, metrics, test_loaders, info)
        finally:
            distributed.teardown_distributed(info)

    def build_core(self, model: torch.nn.Module, params: TrainingParams, info) -> tuple:
        """What training and the LR range test share: the device, seeded RNGs, the model on the device,
        its optimizer and the loss, in that order (the order fixes what the seed gives).

        Returns:
            (device, net, optimizer, criterion).
        """
        device = distributed.choose_device(self.requested_device, info)
        if params.seed is not None:
            seed_everything(params.seed)
        net = model.to(device)
        return device, net, build_optimizer(net, params), build_loss(params).to(device)

    def _prepare(self, model, params: TrainingParams, train_loader, valid_loader, info):
        """Build everything the loop needs and restore a checkpoint; every check happens here."""
        device, net, optimizer, criterion = self.build_core(model, params, info)
        metrics = {
            "train": {
                name: metric.to(device)
                for name, metric in build_metrics(params.train_metrics_list, "train_metrics_list").items()
            },
            "valid": {
                name: metric.to(device)
                for name, metric in build_metrics(params.valid_metrics_list, "valid_metrics_list").items()
            },
        }
        if (
            valid_loader is not None
            and params.metric_to_watch != "loss"
            and params.metric_to_watch not in metrics["valid"]
        ):
            choices = ["loss", *metrics["valid"]]
            raise ValueError(
                f"training_params: metric_to_watch {params.metric_to_watch!r} is not among the validation metrics "
                f"{choices}.{did_you_mean(params.metric_to_watch, choices)}"
            )
        greater_is_better = params.greater_metric_to_watch_is_better
        if greater_is_better is None:
            greater_is_better = _inferred_direction(params.metric_to_watch, metrics["valid"], valid_loader is not None)
        distributed.warn_if_not_sharded(train_loader, "train_loader", info)
        distributed.warn_if_not_sharded(valid_loader, "valid_loader", info)
        steps_per_epoch = schedulers.steps_per_epoch(
            len(train_loader), params.max_train_batches, params.batch_accumulate
        )
        net = distributed.wrap_model(net, device, info)
        resume_path = params.resume_path or str(Path(self.ckpt_dir) / params.ckpt_name)
        resuming = params.resume or params.resume_path
        checkpoint = load_checkpoint(resume_path, map_location=device) if resuming else None
        # resume_schedule: continue builds the schedule from the checkpoint's own params (schedulers.resume_continue).
        schedule_params = schedulers.schedule_params_to_run(params, checkpoint, resume_path)
        lr_callbacks = schedulers.build_lr_callbacks(
            schedule_params, net, optimizer, len(train_loader), steps_per_epoch
        )
        lr_callbacks = schedulers.hold_past_end(lr_callbacks, schedule_params, params, len(train_loader))
        user_callbacks = [_build_callback(entry) for entry in params.phase_callbacks]
        clipping = [GradientClipping(params.clip_grad_norm)] if params.clip_grad_norm else []
        evaluate = None
        if valid_loader is not None:
            evaluate = functools.partial(
                evaluate_module,
                loader=valid_loader,
                criterion=criterion,
                metrics=metrics["valid"],
                device=device,
                max_batches=params.max_valid_batches,
                info=info,
            )
        averaging = build_averaging_callbacks(params, net, optimizer, lr_callbacks, self.ckpt_dir, evaluate)
        framework_after = self._framework_callbacks_after_user(params, info, lr_callbacks + user_callbacks + averaging)
        callbacks = CallbackList([*lr_callbacks, *clipping, *user_callbacks, *averaging, *framework_after])
        context = PhaseContext(
            experiment_name=self.experiment_name,
            ckpt_dir=self.ckpt_dir,
            device=device,
            training_params=params,
            net=net,
            optimizer=optimizer,
            criterion=criterion,
            scaler=grad_scaler(device, params.mixed_precision),
            train_loader=train_loader,
            valid_loader=valid_loader,
            max_epochs=params.max_epochs,
            steps_per_epoch=steps_per_epoch,
            total_steps=steps_per_epoch * params.max_epochs,
            batch_accumulate=params.batch_accumulate,
            train_metric_names=["loss", *metrics["train"]],
            valid_metric_names=["loss", *metrics["valid"]],
            metric_to_watch=params.metric_to_watch,
            greater_metric_to_watch_is_better=greater_is_better,
            rank=info.rank,
            world_size=info.world_size,
        )
        if checkpoint is not None:
            self._resume(context, callbacks, params, checkpoint, resume_path)
        self._loss_guard = TrainLossGuard(params.nonfinite_loss, params.max_consecutive_nonfinite_skips, device, info)
        return context, callbacks, metrics

    def _framework_callbacks_after_user(self, params: TrainingParams, info, earlier: list[Callback]) -> list[Callback]:
        """Checkpointing, logs and progress: they run after the user's callbacks at each phase."""
        stateful = [callback for callback in earlier if callback.checkpoint_key]
        # Logs first: an epoch's rows are on disk before its checkpoint, so a resume finds them.
        after: list[Callback] = build_run_loggers(self.ckpt_dir, params) if info.rank == 0 else []
        if params.save_model:
            after.append(
                CheckpointSaver(
                    self.ckpt_dir, stateful, params.ckpt_name, params.ckpt_best_name, params.save_ckpt_epoch_list
                )
            )
        if not params.silent_mode and info.rank == 0:
            after.append(ProgressBar())
        return after

    def _resume(
        self, context: PhaseContext, callbacks: CallbackList, params: TrainingParams, checkpoint: dict, path: str
    ) -> None:
        """Restore net, callback (scheduler) state, optimizer, scaler, clock, best metric and RNG."""
        try:
            unwrap_model(context.net).load_state_dict(checkpoint["net"], strict=params.resume_strict_load)
        except RuntimeError as error:
            raise RuntimeError(
                f"resume: the weights in {path!r} do not fit the model (resume_strict_load={params.resume_strict_load}): {error}"
            ) from None
        schedulers.load_scheduler_states(callbacks.stateful(), checkpoint, path)
        if params.load_opt_params:
            try:
                context.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
            except (ValueError, KeyError) as error:
                raise RuntimeError(
                    f"resume: the optimizer state in {path!r} does not fit the optimizer: {error}"
                ) from None
        if checkpoint.get("scaler_state_dict"):
            context.scaler.load_state_dict(checkpoint["scaler_state_dict"])
        context.epoch = checkpoint["epoch"]
        context.global_step = checkpoint["global_step"]
        context.train_metrics = dict(checkpoint.get("train_metrics") or {})
        context.valid_metrics = dict(checkpoint.get("valid_metrics") or {})
        if checkpoint.get("metric_to_watch") == context.metric_to_watch:
            context.best_metric = checkpoint.get("best_metric")
        # After swa.start_epoch the saved LR is SWALR's, not the schedule's: nothing to compare.
        owners = [callback for callback in callbacks.callbacks if hasattr(callback, "owns_lr_before")]
        if not any(callback.owns_lr_before(context.epoch) for callback in owners):
            schedulers.warn_on_resumed_lr_mismatch(callbacks.callbacks, context, checkpoint)
        if "rng_states" in checkpoint:
            restore_rng_states(checkpoint["rng_states"])

    # ------------------------------------------------------------------ the loop

    def _run(self, context: PhaseContext, callbacks: CallbackList, metrics, test_loaders, info) -> TrainResult:
        first_epoch = next_epoch = context.epoch
        interrupted = False
        if context.is_rank_zero:
            Path(self.ckpt_dir).mkdir(parents=True, exist_ok=True)
        training_started = False
        try:
            callbacks.fire(Phase.PRE_TRAINING, context)
            training_started = True  # from here on an error is a failure of the run, not of its input
            for epoch in range(first_epoch, context.max_epochs):
                context.epoch = epoch
                self._train_epoch(context, callbacks, metrics["train"], info)
                if context.validates_this_epoch:
                    self._validate(context, callbacks, metrics["valid"], info)
                next_epoch = epoch + 1
                context.stop_training = distributed.any_rank(context.stop_training, context.device, info)
                if context.stop_training:
                    break
            for name, loader in test_loaders.items():
                self._test(name, loader, context, callbacks, metrics["valid"], info)
        except KeyboardInterrupt:
            interrupted = True
            if context.is_rank_zero:
                print(
                    f"\nInterrupted in epoch {context.epoch}; {_last_checkpoint_line(self.ckpt_dir, context.training_params)}",
                    file=sys.stderr,
                )
        except BaseException as error:
            context.exception = error
            if training_started:
                mark_raised_during_training(error)
            raise
        finally:
            callbacks.fire(Phase.POST_TRAINING, context)
        return TrainResult(
            metric_to_watch=context.metric_to_watch,
            best_metric=context.best_metric,
            train_metrics=context.train_metrics,
            valid_metrics=context.valid_metrics,
            test_metrics=context.test_metrics,
            epochs_run=next_epoch - first_epoch,
            next_epoch=next_epoch,
            global_step=context.global_step,
            ckpt_dir=self.ckpt_dir,
            interrupted=interrupted,
            swa_metrics=context.swa_metrics,
        )

    def _train_epoch(self, context: PhaseContext, callbacks: CallbackList, train_metrics, info) -> None:
        """One epoch of training. Every optimizer-step detail is here, in order."""
        params = context.training_params
        net, optimizer, scaler, criterion = context.net, context.optimizer, context.scaler, context.criterion
        accumulate = context.batch_accumulate
        num_batches = _limit(len(context.train_loader), params.max_train_batches)
        autocast = _autocast(context.device, params.mixed_precision)
        context.validates_this_epoch = schedulers.validates_after_epoch(
            context.epoch, context.max_epochs, params.run_validation_freq, context.valid_loader is not None
        )
        context.is_best = False
        context.skipped_steps = 0
        loss_guard = self._loss_guard
        distributed_run = info.is_distributed
        # Entering a context manager costs about 0.5 us; the common case (no autocast, no GradScaler,
        # one process) enters none per batch.
        in_autocast = autocast is not _NO_CONTEXT
        amp_scaling = scaler.is_enabled()
        # The batch phases run their handlers in place, in CallbackList.fire's order: no call per phase.
        handlers_of = callbacks.handlers
        # Without accumulation every batch is a whole step: its window is looked up once, not per batch.
        every_batch_steps = schedulers.accumulation_window(0, num_batches, 1) if accumulate == 1 else None
        loss_guard.start_epoch(context)
        _set_sampler_epoch(context.train_loader, context.epoch)
        net.train()

        callbacks.fire(Phase.TRAIN_EPOCH_START, context)
        for batch_idx, batch in enumerate(context.train_loader):
            if batch_idx >= num_batches:
                break
            context.batch_idx = batch_idx
            context.inputs, context.target = _to_device(batch, context.device)
            context.opens_step, context.closes_step, window = every_batch_steps or schedulers.accumulation_window(
                batch_idx, num_batches, accumulate
            )
            context.optimizer_stepped = False
            for handler in handlers_of[Phase.TRAIN_BATCH_START]:
                handler(context)

            if in_autocast:
                with autocast:
                    context.preds = net(context.inputs)
                    context.loss = criterion(context.preds, context.target)
            else:
                context.preds = net(context.inputs)
                context.loss = criterion(context.preds, context.target)
            for handler in handlers_of[Phase.TRAIN_BATCH_LOSS_END]:
                handler(context)
            # The epoch's loss sum; a NaN/inf loss raises (checked every few batches) or marks the step to skip.
            loss_guard.add_loss(context)

            scaled_loss = context.loss / window if window > 1 else context.loss
            if amp_scaling:
                scaled_loss = scaler.scale(scaled_loss)
            if distributed_run and not context.closes_step:
                with net.no_sync():  # a micro-batch that does not close its step: no gradient all-reduce yet
                    scaled_loss.backward()
            else:
                scaled_loss.backward()
            for handler in handlers_of[Phase.TRAIN_BATCH_BACKWARD_END]:
                handler(context)

            if context.closes_step:
                for handler in handlers_of[Phase.TRAIN_BATCH_GRADIENT_STEP_START]:
                    handler(context)
                # With nonfinite_loss: skip, a window with a non-finite loss drops its step.
                if not loss_guard.skips or loss_guard.step_allowed(context):
                    if amp_scaling:  # False when the GradScaler skipped the step
                        context.optimizer_stepped = _scaled_step(optimizer, scaler)
                    else:
                        optimizer.step()
                        context.optimizer_stepped = True
                optimizer.zero_grad(set_to_none=True)
                if context.optimizer_stepped:
                    context.global_step += 1
                    for handler in handlers_of[Phase.TRAIN_BATCH_STEP]:
                        handler(context)
                else:
                    context.skipped_steps += 1
                    loss_guard.check(context)  # the GradScaler skipped (it synced already): a NaN loss?

            for metric in train_metrics.values():
                metric.update(context.preds.detach(), context.target)
            for handler in handlers_of[Phase.TRAIN_BATCH_END]:
                handler(context)

        loss_guard.end_epoch(context)  # before this epoch's validation and checkpoints
        check_loader_yield("train_loader", context.epoch, loss_guard.batches, num_batches)
        context.train_metrics = epoch_metrics(
            loss_guard.loss_sum, loss_guard.counted_batches, train_metrics, context.device, info
        )
        context.metrics_dict = context.train_metrics
        callbacks.fire(Phase.TRAIN_EPOCH_END, context)

    def _validate(self, context: PhaseContext, callbacks: CallbackList, valid_metrics, info) -> None:
        """Validation after a train epoch, best-metric tracking, and its phases."""
        callbacks.fire(Phase.VALIDATION_EPOCH_START, context)
        context.valid_metrics = self._evaluate(
            context.valid_loader,
            context,
            callbacks,
            valid_metrics,
            info,
            max_batches=context.training_params.max_valid_batches,
            batch_phases=(Phase.VALIDATION_BATCH_START, Phase.VALIDATION_BATCH_END),
        )
        context.metrics_dict = context.valid_metrics
        value = context.valid_metrics[context.metric_to_watch]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"training_params: metric_to_watch {context.metric_to_watch!r} must be a scalar metric, got "
                f"{type(value).__name__} {value!r}; watch 'loss' or a metric that computes one number."
            )
        best = context.best_metric
        context.is_best = best is None or (value > best if context.greater_metric_to_watch_is_better else value < best)
        if context.is_best:
            context.best_metric = value
        callbacks.fire(Phase.VALIDATION_EPOCH_END, context)
        if context.is_best:
            callbacks.fire(Phase.VALIDATION_END_BEST_EPOCH, context)

    def _test(self, name: str, loader, context: PhaseContext, callbacks: CallbackList, test_metrics, info) -> None:
        """One test loader after training, with the validation metrics."""
        context.test_name = name
        callbacks.fire(Phase.TEST_START, context)
        context.test_metrics[name] = self._evaluate(
            loader,
            context,
            callbacks,
            test_metrics,
            info,
            max_batches=None,
            batch_phases=(Phase.TEST_BATCH_START, Phase.TEST_BATCH_END),
        )
        context.metrics_dict = context.test_metrics[name]
        callbacks.fire(Phase.TEST_END, context)

    def _evaluate(
        self, loader, context: PhaseContext, callbacks: CallbackList, metrics, info, max_batches, batch_phases
    ):
        """Run ``loader`` through the net without gradients; return {"loss": mean, metric: value}."""
        batch_start, batch_end = batch_phases
        num_batches = _limit(len(loader), max_batches)
        loss_sum = torch.zeros((), device=context.device)
        batches = 0
        context.net.eval()
        with torch.no_grad(), _autocast(context.device, context.training_params.mixed_precision):
            for batch_idx, batch in enumerate(loader):
                if batch_idx >= num_batches:
                    break
                context.batch_idx = batch_idx
                context.inputs, context.target = _to_device(batch, context.device)
                callbacks.fire(batch_start, context)
                context.preds = context.net(context.inputs)
                context.loss = context.criterion(context.preds, context.target)
                loss_sum += context.loss.float()
                for metric in metrics.values():
                    metric.update(context.preds, context.target)
                callbacks.fire(batch_end, context)
                batches = batch_idx + 1
        where = (
            "valid_loader" if batch_start is Phase.VALIDATION_BATCH_START else f"test_loaders[{context.test_name!r}]"
        )
        check_loader_yield(where, context.epoch, batches, num_batches)
        return epoch_metrics(loss_sum, batches, metrics, context.device, info)


# ---------------------------------------------------------------------- helpers


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), Python's random and NumPy."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _last_checkpoint_line(ckpt_dir: str, params: TrainingParams) -> str:
    path = Path(ckpt_dir) / params.ckpt_name
    if params.save_model and path.is_file():
        return f"the last complete checkpoint is {path} (resume: true continues from it)."
    return f"no checkpoint was written in {ckpt_dir} yet."


def grad_scaler(device: torch.device, mixed_precision: bool) -> torch.amp.GradScaler:
    """The loop's GradScaler: enabled for mixed precision on CUDA (float16), a no-op elsewhere."""
    return torch.amp.GradScaler(device.type, enabled=mixed_precision and device.type == "cuda")


def _limit(length: int, max_batches: int | None) -> int:
    return length if max_batches is None else min(length, max_batches)


_NO_CONTEXT = contextlib.nullcontext()
"""A reusable ``with`` target that does nothing (one object, not one per batch)."""


def _autocast(device: torch.device, enabled: bool):
    # Entering and leaving a disabled torch.autocast costs about 10 us per batch (benchmarks/README.md);
    # when none is active around the loop, not entering one is the same.
    if not enabled and not _autocast_active(device.type):
        return _NO_CONTEXT
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


def _autocast_active(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has no device argument
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def _optimizer_step(optimizer: torch.optim.Optimizer, scaler) -> bool:
    """Step (through the GradScaler when enabled); False when the scaler skipped the step."""
    if not scaler.is_enabled():
        optimizer.step()
        return True
    return _scaled_step(optimizer, scaler)


def _scaled_step(optimizer: torch.optim.Optimizer, scaler) -> bool:
    """Step through an enabled GradScaler; False when it skipped the step."""
    scale_before = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    # The GradScaler already synced to check for inf/NaN; a lowered scale means it skipped.
    return scaler.get_scale() >= scale_before


_PAIR_TYPES = (tuple, list)
_TENSOR = torch.Tensor


def _to_device(batch: Any, device: torch.device) -> tuple[Any, Any]:
    if not isinstance(batch, _PAIR_TYPES) or len(batch) != 2:
        raise TypeError(
            f"train loop: each batch must be an (inputs, target) pair, got {type(batch).__name__}"
            f"{' of length ' + str(len(batch)) if isinstance(batch, (tuple, list)) else ''}."
        )
    inputs, target = batch
    if type(inputs) is _TENSOR and type(target) is _TENSOR and inputs.device == device == target.device:
        return inputs, target  # the common case, without a call per tensor
    return _move(inputs, device), _move(target, device)


def _move(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        # .to() returns the tensor itself when it is already there, but takes microseconds per batch to do so.
        return value if value.device == device else value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(_move(item, device) for item in value)
    if isinstance(value, dict):
        return {key: _move(item, device) for key, item in value.items()}
    return value


def _set_sampler_epoch(loader: Any, epoch: int) -> None:
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def _build_callback(entry: Any) -> Callback:
    """A phase_callbacks entry: a Callback, a registered name, or {name: params}."""
    if isinstance(entry, Callback):
        return entry
    if isinstance(entry, str):
        entry = {entry: {}}
    if isinstance(entry, Mapping) and len(entry) == 1:
        ((name, kwargs),) = entry.items()
        try:
            callback_class = CALLBACKS.get(name)
        except KeyError as error:
            raise ValueError(f"training_params: key 'phase_callbacks': {error}") from None
        return callback_class(**dict(kwargs or {}))
    raise TypeError(
        f"training_params: key 'phase_callbacks': {entry!r} is a {type(entry).__name__}, not a Callback, "
        "a registered callback name or {name: params}."
    )


def _inferred_direction(metric_to_watch: str, valid_metrics: dict[str, Any], validates: bool) -> bool:
    """greater_metric_to_watch_is_better when not given: False for the loss, else the metric's own
    torchmetrics ``higher_is_better`` (error metrics such as MeanSquaredError are lower-is-better)."""
    if metric_to_watch == "loss" or not validates:
        return False
    declared = getattr(valid_metrics[metric_to_watch], "higher_is_better", None)
    if declared is None:
        raise ValueError(
            f"training_params: key 'greater_metric_to_watch_is_better' is None and metric_to_watch {metric_to_watch!r} "
            "does not declare higher_is_better; set it to True or False."
        )
    return bool(declared)


def _named_test_loaders(test_loaders: Any) -> dict[str, Any]:
    if test_loaders is None:
        return {}
    if isinstance(test_loaders, Mapping):
        return dict(test_loaders)
    if isinstance(test_loaders, (list, tuple)):
        return {("test" if index == 0 else f"test_{index}"): loader for index, loader in enumerate(test_loaders)}
    return {"test": test_loaders}
