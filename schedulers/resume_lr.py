"""On resume, warn (``resume_schedule: warn``, the default) or refuse (``error``) when the schedule built
from the current training params does not continue the checkpoint's LR (SuperGradients issues #1732 and
#1024: the recipe changed and the LR jumped silently). ``continue`` is schedulers.resume_continue.

- A torch scheduler's state is restored as saved, so training continues the checkpoint's schedule. The
  warning names the scheduler attributes the current params would have changed (for example T_max
  after a change of max_epochs) and compares ``scheduler.get_last_lr()`` with the saved LR.
- A built-in schedule and the warmup (``LRCallbackBase`` callbacks, which write the LR of step k
  at TRAIN_EPOCH_START/TRAIN_BATCH_START) are functions of the clock: their handlers of those two
  phases are replayed for the last optimizer step before the checkpoint, and the LR they give is
  compared with the LR that step used (the one saved in the optimizer state). An LR callback that
  writes at other phases (SuperGradients-style TRAIN_EPOCH_END) is not replayed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from callbacks import Callback, CallbackList, Phase, PhaseContext
from callbacks.checkpoint import plain_params
from schedulers.base import LRCallbackBase
from schedulers.torch_state import changed_training_params, format_changes

LR_WRITING_PHASES = (Phase.TRAIN_EPOCH_START, Phase.TRAIN_BATCH_START)


def warn_on_resumed_lr_mismatch(callbacks: list[Callback], context: PhaseContext, checkpoint: dict[str, Any]) -> None:
    """Apply ``resume_schedule`` when the resumed LR schedule differs from the one that wrote ``checkpoint``:
    ``warn`` (``UserWarning``), ``error`` (``ValueError``); ``continue`` runs the checkpoint's own schedule
    (schedulers.resume_continue), so there is nothing to compare.

    Call after the net, scheduler and optimizer states and the clock (epoch, global_step) are restored.

    Raises:
        ValueError: ``resume_schedule: error`` and the schedules differ.
    """
    if _policy(context) == "continue":
        return
    saved_lrs = [group["lr"] for group in checkpoint["optimizer_state_dict"]["param_groups"]]
    param_changes = changed_training_params(checkpoint.get("training_params"), plain_params(context.training_params))
    changed = (
        f" Training params changed since the checkpoint: {format_changes(param_changes)}." if param_changes else ""
    )
    torch_callbacks = [callback for callback in callbacks if callback.checkpoint_key == "torch_scheduler_state_dict"]
    for callback in torch_callbacks:
        _check_torch_scheduler(callback, context, saved_lrs, changed)
    builtin = [callback for callback in callbacks if isinstance(callback, LRCallbackBase)]
    # With a torch scheduler the saved LR is the scheduler's value for the next step, unless the last
    # step was the warmup's: only then is it the LR that the replayed callbacks wrote.
    if builtin and all(c.warmup_wrote_last_lr(context.epoch, context.global_step) for c in torch_callbacks):
        _check_builtin_schedule(builtin, context, saved_lrs, changed)


def _check_torch_scheduler(callback: Any, context: PhaseContext, saved_lrs: list[float], changed: str) -> None:
    where = f"resume: lr_mode {callback.description}"
    if callback.config_changes:
        _report(
            context,
            f"{where}: the scheduler built from the current training params differs from the checkpoint's: "
            f"{format_changes(callback.config_changes)}.{changed} The checkpoint's scheduler state is restored, so "
            f"training continues the checkpoint's schedule (next LR {_show(callback.scheduler.get_last_lr())}), not the "
            "one the current params describe.",
        )
        return
    if callback.warmup_wrote_last_lr(context.epoch, context.global_step):
        return  # the saved LR is the warmup's; the scheduler's first value follows it by design
    next_lrs = [float(lr) for lr in callback.scheduler.get_last_lr()]
    if next_lrs != [float(lr) for lr in saved_lrs]:
        _report(
            context,
            f"{where}: the restored scheduler gives LR {_show(next_lrs)} for the next step (global step "
            f"{context.global_step}), but the checkpoint's optimizer state holds {_show(saved_lrs)}.{changed}",
        )


def _check_builtin_schedule(
    lr_callbacks: list[LRCallbackBase], context: PhaseContext, saved_lrs: list[float], changed: str
) -> None:
    """Re-run the LR callbacks for the last optimizer step before the checkpoint and compare."""
    last_step = context.global_step - 1
    if last_step < 0:
        return
    replayed = _replay_step(lr_callbacks, context, epoch=context.epoch - 1, global_step=last_step)
    if [float(lr) for lr in replayed] != [float(lr) for lr in saved_lrs]:
        names = ", ".join(type(callback).__name__ for callback in lr_callbacks)
        _report(
            context,
            f"resume: the LR schedule ({names}) built from the current training params gives LR {_show(replayed)} for "
            f"optimizer step {last_step}, but the run that wrote the checkpoint used {_show(saved_lrs)} for it; the LR "
            f"will not continue smoothly from the checkpoint.{changed} Resume with the original params to continue "
            "the same schedule.",
        )


def _replay_step(
    lr_callbacks: list[LRCallbackBase], context: PhaseContext, epoch: int, global_step: int
) -> list[float]:
    """The LRs the callbacks write for optimizer step ``global_step`` of ``epoch``; the optimizer and the
    context are left as they were."""
    optimizer = context.optimizer
    groups = optimizer.param_groups
    lrs_before = [group["lr"] for group in groups]
    fields = ("epoch", "global_step", "batch_idx", "opens_step", "closes_step")
    context_before = {name: getattr(context, name) for name in fields}
    num_batches = len(context.train_loader)
    if context.training_params.max_train_batches is not None:
        num_batches = min(num_batches, context.training_params.max_train_batches)
    context.epoch, context.global_step = epoch, global_step
    context.batch_idx = (num_batches - 1) // context.batch_accumulate * context.batch_accumulate
    context.opens_step, context.closes_step = True, True
    replay = CallbackList(lr_callbacks)
    try:
        for phase in LR_WRITING_PHASES:
            replay.fire(phase, context)
        return [group["lr"] for group in optimizer.param_groups]
    finally:
        optimizer.param_groups = groups
        for group, lr in zip(groups, lrs_before):
            group["lr"] = lr
        for name, value in context_before.items():
            setattr(context, name, value)


def under_resume_policy(check: Callable[[], None], context: PhaseContext) -> None:
    """Run another schedule's resume check (one that warns) under ``resume_schedule``: with ``error``
    each of its ``UserWarning``s becomes the refusal (``ValueError``).
    """
    if _policy(context) != "error":
        check()
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        check()
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            _report(context, str(warning.message))


def _policy(context: PhaseContext) -> str:
    return context.training_params.get("resume_schedule", "warn")


def _report(context: PhaseContext, message: str) -> None:
    """A mismatch: a warning, or with ``resume_schedule: error`` a refusal."""
    if _policy(context) == "error":
        raise ValueError(
            f"{message} Refusing to resume (training_params: resume_schedule is 'error'); set resume_schedule: "
            "continue to keep the checkpoint's schedule (holding its final value past its end), or warn to run the "
            "rebuilt one."
        )
    warnings.warn(
        f"{message} (resume_schedule: warn; 'error' refuses such a resume, 'continue' keeps the checkpoint's schedule)",
        UserWarning,
        stacklevel=5,
    )


def _show(lrs: list[Any]) -> str:
    values = [f"{float(lr):.6g}" for lr in lrs]
    return values[0] if len(values) == 1 else "[" + ", ".join(values) + "]"
