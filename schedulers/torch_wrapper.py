"""Native torch schedulers as a phase callback: the mapping form of ``lr_mode``.

``lr_mode: {StepLR: {step_size: 1, gamma: 0.1, phase: TRAIN_EPOCH_END}}`` builds the scheduler on the
trainer's optimizer (schedulers.torch_build) and steps it at its phase:

- ``TRAIN_BATCH_STEP`` / ``TRAIN_BATCH_END``: once after every optimizer step (never per micro-batch,
  never for a step the GradScaler skipped), so optimizer step k uses the scheduler's k-th value, as
  in the loop ``optimizer.step(); scheduler.step()``. Default for OneCycleLR and CyclicLR.
- ``TRAIN_EPOCH_END``: once per epoch after the training batches (default otherwise).
- ``VALIDATION_EPOCH_END``: once per epoch that validates, after validation.

While a warmup runs (lr_warmup_epochs / lr_warmup_steps) the scheduler is not stepped and the warmup
owns the LR; when it ends, the scheduler's own first values are written back into the param groups
(torch's schedulers read ``group["lr"]``), so the LR from then on is the scheduler's sequence from its
start. During lr_cooldown_epochs the scheduler is not stepped: the LR holds. Only ``lr`` is written;
momentum cycled by OneCycleLR/CyclicLR is the scheduler's.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.optim import lr_scheduler

from callbacks import Callback, Phase, PhaseCallback, PhaseContext
from registry import did_you_mean
from schedulers import resume_lr
from schedulers.clock import ScheduleClock, validates_after_epoch
from schedulers.torch_build import WHERE, build_scheduler, describe, scheduler_class, short_onecycle, split_lr_mode
from schedulers.torch_state import diff_states, format_changes, plain_state

PER_STEP_PHASES = (Phase.TRAIN_BATCH_STEP, Phase.TRAIN_BATCH_END)
EPOCH_PHASES = (Phase.TRAIN_EPOCH_END, Phase.VALIDATION_EPOCH_END)
SCHEDULER_PHASES = PER_STEP_PHASES + EPOCH_PHASES
PER_STEP_BY_DEFAULT = (lr_scheduler.OneCycleLR, lr_scheduler.CyclicLR)


class TorchSchedulerCallback(PhaseCallback):
    """Steps a torch LR scheduler at its phase and keeps its state in every checkpoint.

    Args:
        scheduler: the scheduler, built on the trainer's optimizer.
        phase: one of ``SCHEDULER_PHASES``.
        clock: the run's schedule clock (warmup and cooldown lengths).
        run_length: how many times the scheduler steps in this run (the value of "auto").
        metric_name: for ReduceLROnPlateau, the metric it steps on (train metrics at
            TRAIN_EPOCH_END, validation metrics at VALIDATION_EPOCH_END).
        run_validation_freq: the run's validation frequency (which epochs a VALIDATION_EPOCH_END
            scheduler steps at; read by ``restart_epochs``).
    """

    checkpoint_key = "torch_scheduler_state_dict"

    def __init__(
        self,
        scheduler: lr_scheduler.LRScheduler,
        phase: Phase | str,
        clock: ScheduleClock,
        run_length: int,
        metric_name: str | None = None,
        run_validation_freq: int = 1,
    ):
        super().__init__(phase)
        self.scheduler = scheduler
        self.clock = clock
        self.run_length = run_length
        self.metric_name = metric_name
        self.run_validation_freq = run_validation_freq
        self._always_steps = not (clock.warmup_epochs or clock.warmup_steps or clock.cooldown_epochs)
        """No warmup or cooldown window: every phase call steps (the per-step path skips ``_steps_now``)."""
        self._plain_per_step = self._always_steps and metric_name is None and self.phase is Phase.TRAIN_BATCH_STEP
        """Every call is one ``scheduler.step()``: the common per-step case, with no test per call."""
        self.description = describe(scheduler)
        self.initial_state = plain_state(scheduler.state_dict(), f"{WHERE}: {self.description}.state_dict()")
        self.config_changes: list[tuple[str, Any, Any]] = []
        """Scheduler attributes that differ between the checkpoint's build and this one (set on resume)."""

    @property
    def per_step(self) -> bool:
        """True when the scheduler steps once per optimizer step."""
        return self.phase in PER_STEP_PHASES

    def __call__(self, context: PhaseContext) -> None:
        if self._plain_per_step:
            self.scheduler.step()
            return
        if self.phase is Phase.TRAIN_BATCH_END and not context.optimizer_stepped:
            return
        if not (self._always_steps or self._steps_now(context)):
            return
        if self.metric_name is None:
            self.scheduler.step()
        else:
            metrics = context.train_metrics if self.phase is Phase.TRAIN_EPOCH_END else context.valid_metrics
            self.scheduler.step(float(metrics[self.metric_name]))

    def on_training_start(self, context: PhaseContext) -> None:
        where = f"{WHERE}: {self.description}"
        if self.phase is Phase.VALIDATION_EPOCH_END and context.valid_loader is None:
            raise ValueError(
                f"{where}: phase VALIDATION_EPOCH_END never fires without a valid_loader; pass one, or use "
                "phase TRAIN_EPOCH_END."
            )
        if self.metric_name is not None:
            train = self.phase is Phase.TRAIN_EPOCH_END
            names = context.train_metric_names if train else context.valid_metric_names
            if self.metric_name not in names:
                raise ValueError(
                    f"{where}: metric_name {self.metric_name!r} is not available at {self.phase.name}; "
                    f"the {'train' if train else 'validation'} metrics there are {names}."
                    f"{did_you_mean(self.metric_name, names)}"
                )

    def on_train_loader_start(self, context: PhaseContext) -> None:
        if self.clock.warmup_epochs and context.epoch == self.clock.warmup_epochs:
            self.write_scheduler_lr(context.optimizer)

    def on_train_batch_start(self, context: PhaseContext) -> None:
        warmup_steps = self.clock.warmup_steps
        if warmup_steps and not self.clock.warmup_epochs and context.opens_step and context.global_step == warmup_steps:
            self.write_scheduler_lr(context.optimizer)

    def write_scheduler_lr(self, optimizer: torch.optim.Optimizer) -> None:
        """Write the scheduler's current values into the param groups (``lr`` only)."""
        for group, lr in zip(optimizer.param_groups, self.scheduler.get_last_lr()):
            group["lr"] = lr

    def warmup_wrote_last_lr(self, epoch: int, global_step: int) -> bool:
        """True when the optimizer step before (epoch, global_step) used a warmup LR, not the scheduler's."""
        if self.clock.warmup_epochs:
            return epoch <= self.clock.warmup_epochs
        return global_step <= self.clock.warmup_steps

    def state_dict(self) -> dict[str, Any]:
        return {
            "scheduler": self.description,
            "phase": self.phase.name,
            "initial_state": self.initial_state,
            "state": plain_state(self.scheduler.state_dict(), f"{self.description}.state_dict()"),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # torch's load_state_dict pops keys from what it is given; the checkpoint stays intact.
        self.scheduler.load_state_dict(copy.deepcopy(state["state"]))
        # Matters when the optimizer state is not loaded (load_opt_params=False): torch's chainable
        # schedulers continue from group["lr"].
        self.write_scheduler_lr(self.scheduler.optimizer)

    def restore(self, saved: dict[str, Any] | None, path: str, saved_lr_mode: Any) -> None:
        """Load ``saved`` (a checkpoint's entry) after checking it belongs to this scheduler.

        Raises:
            RuntimeError: no scheduler state, another scheduler or cadence, or a restored OneCycleLR
                too short for this run.
        """
        current = f"{self.description} stepped at {self.phase.name}"
        if saved is None:
            raise RuntimeError(
                f"resume: checkpoint {path!r} holds no torch scheduler state (it was trained with lr_mode "
                f"{saved_lr_mode!r}), but lr_mode is now the torch scheduler {current}. Resume with the lr_mode the "
                "checkpoint was trained with, or start a new experiment."
            )
        saved_per_step = Phase[saved["phase"]] in PER_STEP_PHASES
        if saved["scheduler"] != self.description or saved_per_step != self.per_step:
            raise RuntimeError(
                f"resume: checkpoint {path!r} holds the state of torch scheduler {saved['scheduler']} stepped at "
                f"{saved['phase']}, but lr_mode is now {current}. Resume with the lr_mode the checkpoint was trained "
                "with, or start a new experiment."
            )
        self.config_changes = diff_states(saved["initial_state"], self.initial_state)
        self.load_state_dict(saved)
        short = short_onecycle(self.scheduler, self.run_length)
        if short:
            label, total_steps, needed = short
            changes = f" ({format_changes(self.config_changes)})" if self.config_changes else ""
            raise RuntimeError(
                f"resume: {label} restored from {path!r} has total_steps={total_steps}, but this run takes {needed} "
                f"steps; the checkpoint's scheduler was built for another run length{changes} and a OneCycleLR cannot "
                "be stretched on resume. Keep the training params the checkpoint was trained with, or start a new "
                "experiment."
            )

    def _steps_now(self, context: PhaseContext) -> bool:
        """False while the warmup owns the LR and during the cooldown; otherwise True."""
        return self._steps_at(context.epoch, context.global_step)

    def _steps_at(self, epoch: int, global_step: int) -> bool:
        clock = self.clock
        if clock.warmup_epochs:
            if epoch < clock.warmup_epochs:
                return False
        elif clock.warmup_steps and global_step <= clock.warmup_steps:
            return False
        if clock.cooldown_epochs:
            if self.per_step:
                return global_step < clock.total_steps - clock.cooldown_steps
            return epoch + 1 < clock.max_epochs - clock.cooldown_epochs
        return True

    def restart_epochs(self) -> list[int]:
        """Epochs (counted from 1) after whose end a ``CosineAnnealingWarmRestarts`` restarts; [] for other schedulers.

        The restarts are at the scheduler's own step counts ``T_0``, ``T_0 + T_0*T_mult``, ... Stepped per
        epoch, a restart follows the epoch whose step reaches such a count (with T_0=10, T_mult=2 and no
        warmup: epochs 10, 30, 70, 150). Stepped per optimizer step, optimizer step k uses the scheduler's
        value number k - W (W warmup steps), so the cycle ending at count b ends with global step W + b - 1,
        and the restart epoch is the one holding that step. Only restarts inside the run count: the
        restarted value must be used by a later step (per step) or epoch (per epoch) before the cooldown.
        """
        scheduler = self.scheduler
        if not isinstance(scheduler, lr_scheduler.CosineAnnealingWarmRestarts):
            return []
        clock = self.clock
        boundaries, period = [scheduler.T_0], scheduler.T_0
        epochs: list[int] = []
        if self.per_step:
            while clock.warmup_steps + boundaries[-1] < clock.total_steps - clock.cooldown_steps:
                epochs.append((clock.warmup_steps + boundaries[-1] - 1) // clock.steps_per_epoch + 1)
                period *= scheduler.T_mult
                boundaries.append(boundaries[-1] + period)
            return epochs
        stepped = 0
        for epoch in range(clock.max_epochs - 1):
            steps = self._steps_at(epoch, (epoch + 1) * clock.steps_per_epoch)
            if self.phase is Phase.VALIDATION_EPOCH_END:
                steps = steps and validates_after_epoch(epoch, clock.max_epochs, self.run_validation_freq, True)
            stepped += steps
            if steps and stepped == boundaries[-1]:
                epochs.append(epoch + 1)
                period *= scheduler.T_mult
                boundaries.append(boundaries[-1] + period)
        return epochs


def build_torch_lr_callbacks(
    training_params: Any,
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    train_loader_len: int,
    steps_per_epoch: int,
) -> list[Callback]:
    """The callback of a mapping ``lr_mode`` ``{SchedulerName: {kwargs, phase, metric_name}}``.

    Raises:
        ValueError, TypeError: an unknown scheduler, argument or phase, a missing or misplaced
            metric_name, a OneCycleLR total_steps shorter than the run, a bad nesting.
    """
    name, kwargs = split_lr_mode(training_params.lr_mode)
    cls = scheduler_class(name)
    where = f"{WHERE}: {name}"
    phase = _scheduler_phase(cls, kwargs.pop("phase", None), where)
    metric_name = kwargs.pop("metric_name", None)
    plateau = issubclass(cls, lr_scheduler.ReduceLROnPlateau)
    if plateau and metric_name is None:
        raise ValueError(
            f"{where}: ReduceLROnPlateau needs metric_name, the metric it steps on: 'loss' or a train metric at "
            "TRAIN_EPOCH_END, 'loss' or a validation metric at VALIDATION_EPOCH_END."
        )
    if not plateau and metric_name is not None:
        raise ValueError(f"{where}: metric_name is only for ReduceLROnPlateau; {name} steps without a metric.")
    if metric_name is not None and not isinstance(metric_name, str):
        raise TypeError(f"{where}: metric_name must be a string, got {type(metric_name).__name__} {metric_name!r}.")
    if plateau and phase not in EPOCH_PHASES:
        raise ValueError(
            f"{where}: ReduceLROnPlateau steps on an epoch metric; phase must be one of "
            f"{', '.join(p.name for p in EPOCH_PHASES)}, got {phase.name}."
        )
    clock = ScheduleClock.from_params(training_params, steps_per_epoch)
    run_length = scheduler_run_length(phase, clock, training_params.run_validation_freq)
    # Build on groups without "initial_lr", as in a plain torch loop: torch sets it with setdefault, and
    # CyclicLR's first value depends on it being unset. Groups that the scheduler left without one
    # (ReduceLROnPlateau) get the trainer's back.
    trainer_initial_lrs = [group.pop("initial_lr", None) for group in optimizer.param_groups]
    try:
        scheduler = build_scheduler(cls, kwargs, optimizer, run_length, where)
    finally:
        for group, initial_lr in zip(optimizer.param_groups, trainer_initial_lrs):
            if initial_lr is not None:
                group.setdefault("initial_lr", initial_lr)
    short = short_onecycle(scheduler, run_length)
    if short:
        label, total_steps, needed = short
        raise ValueError(
            f"{WHERE}: {label} total_steps={total_steps} is smaller than the {needed} steps it takes in this run; "
            f"torch would fail at step {total_steps + 1} with 'Tried to step {total_steps + 1} times'. "
            f"Use total_steps: auto, or a value >= {needed}."
        )
    return [
        TorchSchedulerCallback(scheduler, phase, clock, run_length, metric_name, training_params.run_validation_freq)
    ]


def scheduler_run_length(phase: Phase, clock: ScheduleClock, run_validation_freq: int) -> int:
    """The value of "auto": the optimizer steps (per-step phases) or epochs (epoch phases) the
    scheduler governs, after the warmup and before the cooldown; at VALIDATION_EPOCH_END only the
    epochs that validate count."""
    if phase in PER_STEP_PHASES:
        return clock.main_steps
    first = clock.warmup_steps // clock.steps_per_epoch
    epochs = range(first, clock.max_epochs - clock.cooldown_epochs)
    if phase is Phase.VALIDATION_EPOCH_END:
        return sum(1 for e in epochs if (e + 1) % run_validation_freq == 0 or e + 1 == clock.max_epochs)
    return len(epochs)


def load_torch_scheduler_state(stateful_callbacks: list[Callback], checkpoint: dict[str, Any], path: str) -> None:
    """Load every stateful callback's state from ``checkpoint``; check the torch scheduler matches.

    Runs before the optimizer state is loaded (torch's order: build the scheduler, then load the
    optimizer, so the loaded LRs are not overwritten).

    Raises:
        RuntimeError: the checkpoint's torch scheduler state does not match the current lr_mode, or
            a stateful callback's state is missing.
    """
    key = TorchSchedulerCallback.checkpoint_key
    saved_lr_mode = (checkpoint.get("training_params") or {}).get("lr_mode")
    if key in checkpoint and not any(isinstance(c, TorchSchedulerCallback) for c in stateful_callbacks):
        raise RuntimeError(
            f"resume: checkpoint {path!r} holds the state of torch scheduler {checkpoint[key]['scheduler']} (lr_mode "
            f"{saved_lr_mode!r}), but the current lr_mode is not a torch-scheduler mapping. Resume with the lr_mode the "
            "checkpoint was trained with, or start a new experiment."
        )
    for callback in stateful_callbacks:
        if isinstance(callback, TorchSchedulerCallback):
            callback.restore(checkpoint.get(key), path, saved_lr_mode)
        elif callback.checkpoint_key in checkpoint:
            callback.load_state_dict(checkpoint[callback.checkpoint_key])
        else:
            raise RuntimeError(
                f"resume: checkpoint {path!r} has no {callback.checkpoint_key!r} entry for callback "
                f"{type(callback).__name__}; it was written without that callback. Keys found: {sorted(checkpoint)}."
            )


def warn_on_resumed_lr_mismatch(callbacks: list[Callback], context: PhaseContext, checkpoint: dict[str, Any]) -> None:
    """Warn when the restored schedule's LR differs from the LR saved in the checkpoint (see schedulers.resume_lr)."""
    resume_lr.warn_on_resumed_lr_mismatch(callbacks, context, checkpoint)


def _scheduler_phase(cls: type, value: Any, where: str) -> Phase:
    if value is None:
        return Phase.TRAIN_BATCH_STEP if issubclass(cls, PER_STEP_BY_DEFAULT) else Phase.TRAIN_EPOCH_END
    phase = Phase.coerce(value, where=f"{where} phase")
    if phase not in SCHEDULER_PHASES:
        raise ValueError(
            f"{where}: phase {phase.name} cannot step a scheduler; valid phases: "
            f"{', '.join(p.name for p in SCHEDULER_PHASES)}."
        )
    return phase
