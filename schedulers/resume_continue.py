"""``resume_schedule: continue``: resume with the schedule the checkpoint was trained with.

The schedule callbacks are built from the training params saved in the checkpoint (its
``training_params`` entry) instead of the current ones, so the LR continues exactly as the original
run would have. The run may be longer than the one the schedule was built for (``max_epochs``
raised from 4 to 6): from the schedule's old end on, its callbacks no longer run and the LR they
wrote last holds (for a built-in schedule the value of its last step, for a torch scheduler the
value after its last ``step()``), which is what resuming a finished run for more epochs expects.

It applies to every callback in the list it is given (warmups, built-in schedules, torch
schedulers, any other schedule built from the params), so a builder of another schedule that is
handed ``schedule_params_to_run(...)`` and wrapped with ``hold_past_end`` gets the same policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from callbacks import Callback, CallbackList, Phase, PhaseContext
from callbacks.phases import PHASE_TO_METHOD
from schedulers.clock import ScheduleClock, steps_per_epoch

EPOCH_BOUND_PHASES = frozenset(
    phase for phase in Phase if phase.name.startswith("TRAIN_") or phase.name.startswith("VALIDATION_")
)
"""Phases that belong to one epoch; past the schedule's last epoch they no longer reach it."""


def schedule_params_to_run(training_params: Any, checkpoint: Mapping[str, Any] | None, path: str = "") -> Any:
    """The params the schedule callbacks are built from: the current ones, or with
    ``resume_schedule: continue`` the checkpoint's saved params (keys whose current value is an
    object, such as an optimizer instance or callbacks, keep the current value).

    Raises:
        RuntimeError: ``continue`` but the checkpoint holds no training params.
    """
    if checkpoint is None or training_params.resume_schedule != "continue":
        return training_params
    saved = checkpoint.get("training_params")
    if not isinstance(saved, Mapping) or "max_epochs" not in saved:
        raise RuntimeError(
            f"resume: resume_schedule is 'continue', but checkpoint {path!r} holds no training params to rebuild "
            "its schedule from; resume with resume_schedule: warn or error."
        )
    from schedulers.factory import lr_param_names

    merged = dict(training_params)
    try:
        for key in lr_param_names(training_params) - lr_param_names(dict(saved)):
            merged.pop(key, None)  # a parameter of the new schedule class only
    except (ValueError, TypeError):
        pass  # the saved lr_mode is not registered now: building from it reports that
    for key, value in saved.items():
        if key not in training_params or _is_plain(training_params[key]):
            merged[key] = value
    for key in ("resume", "resume_path", "resume_schedule"):
        merged[key] = training_params[key]
    return type(training_params)(merged)


def hold_past_end(
    schedule_callbacks: list[Callback], schedule_params: Any, training_params: Any, train_loader_len: int
) -> list[Callback]:
    """Wrap each schedule callback so that it stops at the end of the run its params describe.

    Returns the callbacks unchanged unless ``schedule_params`` are the checkpoint's (``continue``).
    """
    if schedule_params is training_params:
        return schedule_callbacks
    old_steps_per_epoch = steps_per_epoch(
        train_loader_len, schedule_params.max_train_batches, schedule_params.batch_accumulate
    )
    clock = ScheduleClock.from_params(schedule_params, old_steps_per_epoch)
    return [HeldPastEnd(callback, clock.max_epochs) for callback in schedule_callbacks]


def unwrapped(callbacks: list[Callback]) -> list[Callback]:
    """The callbacks with ``HeldPastEnd`` wrappers replaced by what they wrap."""
    return [callback.schedule if isinstance(callback, HeldPastEnd) else callback for callback in callbacks]


class HeldPastEnd(Callback):
    """Runs a schedule callback through the epochs of the run it was built for, then never again.

    Args:
        schedule: the callback (its state, if any, is saved under its own checkpoint key).
        end_epoch: the first epoch beyond its schedule (its ``max_epochs``).
    """

    def __init__(self, schedule: Callback, end_epoch: int):
        self.schedule = schedule
        self.end_epoch = end_epoch
        self.checkpoint_key = schedule.checkpoint_key
        self._inner = CallbackList([schedule])

    def _forward(self, phase: Phase, context: PhaseContext) -> None:
        if phase in EPOCH_BOUND_PHASES and context.epoch >= self.end_epoch:
            return
        self._inner.fire(phase, context)

    def state_dict(self) -> dict[str, Any]:
        return self.schedule.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.schedule.load_state_dict(state)


def _forwarding(phase: Phase):
    def handler(self: HeldPastEnd, context: PhaseContext) -> None:
        self._forward(phase, context)

    handler.__name__ = PHASE_TO_METHOD[phase]
    return handler


for _phase, _method in PHASE_TO_METHOD.items():
    setattr(HeldPastEnd, _method, _forwarding(_phase))


def _is_plain(value: Any) -> bool:
    if isinstance(value, Mapping):
        return all(_is_plain(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return value is None or isinstance(value, (bool, int, float, str, Enum))
