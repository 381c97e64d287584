"""Learning-rate schedules as phase callbacks, and the wrapper of torch's schedulers."""

from schedulers.base import LRCallbackBase
from schedulers.clock import ScheduleClock, accumulation_window, steps_per_epoch, validates_after_epoch
from schedulers.factory import build_lr_callbacks, load_scheduler_states, lr_param_names, warn_on_resumed_lr_mismatch
from schedulers.resume_continue import hold_past_end, schedule_params_to_run

__all__ = [
    "LRCallbackBase",
    "ScheduleClock",
    "accumulation_window",
    "build_lr_callbacks",
    "hold_past_end",
    "load_scheduler_states",
    "lr_param_names",
    "schedule_params_to_run",
    "steps_per_epoch",
    "validates_after_epoch",
    "warn_on_resumed_lr_mismatch",
]
