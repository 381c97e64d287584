"""The ``param_scheduler`` training param as a callback: MMEngine-style schedules of any param-group key.

``ParamSchedulerCallback`` writes, at ``TRAIN_BATCH_START`` of the batch that opens optimizer step k,
the value of every scheduled key that the timeline (schedulers.param_replay) gives for step k, and
runs the plateau segments after each validation. Its state (the plateau counters and the reductions
so far) goes into every checkpoint under ``param_scheduler_state``. See docs/param_schedules.md.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from callbacks import Callback, PhaseContext
from callbacks.checkpoint import plain_params
from registry import did_you_mean
from schedulers import param_schedule_math
from schedulers.param_replay import build_timeline, key_accessors
from schedulers.param_scheduler_config import WHERE, Segment, parse_entries, resolve_segments, split_entry
from schedulers.torch_state import changed_training_params, format_changes

CHECKPOINT_KEY = "param_scheduler_state"


class ParamSchedulerCallback(Callback):
    """Writes MMEngine-style schedules of any param-group key; plateau segments step after validation.

    Args:
        raw: the ``param_scheduler`` list as given (kept to tell checkpoints apart).
        segments: the resolved segments.
        optimizer: the trainer's optimizer (its groups give the base values).
        steps_per_epoch: S.
    """

    checkpoint_key = CHECKPOINT_KEY

    def __init__(self, raw: list[Any], segments: list[Segment], optimizer: torch.optim.Optimizer, steps_per_epoch: int):
        self.raw = raw
        self.segments = segments
        self.steps_per_epoch = steps_per_epoch
        self.keys = list(dict.fromkeys(segment.key for segment in segments))
        self.names = [segment.entry.name for segment in segments]
        accessors = {key: key_accessors(optimizer, key, WHERE) for key in self.keys}
        self.writers = [accessors[key][1] for key in self.keys]
        self.timeline, self.class_of = build_timeline(segments, optimizer, accessors, steps_per_epoch)
        self.plateaus = {
            i: _fresh_plateau() for i, segment in enumerate(segments) if segment.shape == "ReduceOnPlateau"
        }

    @property
    def scheduled_keys(self) -> list[str]:
        """The param-group keys this callback moves (``lr``, ``momentum``, ``weight_decay``, ...)."""
        return list(self.keys)

    def values_at(self, global_step: int) -> dict[str, list[float]]:
        """key -> the value of every param group at optimizer step ``global_step``."""
        values = self.timeline.values_at(global_step)
        return {key: [values[key][c] for c in self.class_of] for key in self.keys}

    def on_training_start(self, context: PhaseContext) -> None:
        context.scheduled_keys = list(dict.fromkeys([*context.scheduled_keys, *self.keys]))
        if not self.plateaus:
            return
        for index in self.plateaus:
            segment = self.segments[index]
            monitor = segment.args["monitor"]
            if context.valid_loader is None:
                raise ValueError(
                    f"{segment.entry.where}: a plateau schedule steps after each validation, but there is no "
                    "valid_loader; pass one or drop the segment."
                )
            if monitor not in context.valid_metric_names:
                names = context.valid_metric_names
                raise ValueError(
                    f"{segment.entry.where}: monitor {monitor!r} is not a validation metric; the validation metrics "
                    f"are {names}.{did_you_mean(monitor, names)}"
                )

    def on_train_batch_start(self, context: PhaseContext) -> None:
        if not context.opens_step:
            return
        values = self.timeline.values_at(context.global_step)
        groups = context.optimizer.param_groups
        class_of = self.class_of
        for key, write in zip(self.keys, self.writers):
            per_class = values[key]
            for group, c in zip(groups, class_of):
                write(group, per_class[c])

    def on_validation_loader_end(self, context: PhaseContext) -> None:
        completed = context.epoch + 1  # MMEngine's counter: train epochs done when this validation runs
        for index, state in self.plateaus.items():
            segment = self.segments[index]
            if not segment.begin <= completed < segment.end:
                continue
            metric = float(context.valid_metrics[segment.args["monitor"]])
            if param_schedule_math.plateau_update(segment.args, state, metric):
                self.timeline.add_reduction(completed, index)

    def restart_epochs(self) -> list[int]:
        """Epochs, counted from 1, at whose end a CosineRestartLR cycle ends and the next one begins.

        A restart at position p (the first of a new period, begin < p < min(end, run length)) is
        counted for the epoch holding the last position of the ending cycle: epoch p for an epoch
        segment; ``(p - 1) // S + 1`` for a per-step one (so a restart in the middle of an epoch
        counts for that epoch, one at an epoch start for the epoch before). The end of the last
        period is not a restart.
        """
        epochs = set()
        for segment in self.segments:
            if segment.shape != "CosineRestart" or segment.key != "lr":
                continue
            limit = segment.end
            for offset in segment.args["cumulative_periods"][:-1]:
                position = segment.begin + offset
                if position >= limit:
                    break
                epochs.add(position if segment.by_epoch else (position - 1) // self.steps_per_epoch + 1)
        return sorted(epochs)

    def state_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.names),
            "keys": list(self.keys),
            "param_scheduler": plain_params(self.raw),
            "plateaus": {str(index): dict(state) for index, state in self.plateaus.items()},
            "reductions": [
                [boundary, index] for boundary, items in self.timeline.reductions.items() for index in items
            ],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore plateau counters and reductions.

        Raises:
            RuntimeError: the checkpoint was written by another ``param_scheduler`` (other classes or keys).
        """
        if state.get("classes") != self.names or state.get("keys") != self.keys:
            raise RuntimeError(
                f"resume: the checkpoint's param_scheduler {describe(state.get('param_scheduler'))} is another "
                f"schedule than the current param_scheduler {describe(self.raw)} (classes {state.get('classes')} "
                f"vs {self.names}). Resume with the param_scheduler the checkpoint was trained with, or start a new "
                "experiment."
            )
        self.plateaus = {int(index): dict(saved) for index, saved in state["plateaus"].items()}
        self.timeline.reductions = {}
        for boundary, index in state["reductions"]:
            self.timeline.reductions.setdefault(int(boundary), []).append(int(index))
        self.timeline.position = -1

    def warn_on_resumed_jump(self, context: PhaseContext, checkpoint: dict[str, Any]) -> None:
        """Warn when a scheduled key's value for the last step before the checkpoint differs from the saved one."""
        last_step = context.global_step - 1
        saved_groups = checkpoint["optimizer_state_dict"]["param_groups"]
        if last_step < 0 or len(saved_groups) != len(context.optimizer.param_groups):
            return
        now = self.values_at(last_step)
        for key in self.keys:
            read = (lambda g: g["betas"][0]) if key == "momentum" and "momentum" not in saved_groups[0] else None
            read = read or (lambda g, key=key: g[key])
            saved = [float(read(group)) for group in saved_groups]
            if [float(value) for value in now[key]] != saved:
                changes = changed_training_params(
                    checkpoint.get("training_params"), plain_params(context.training_params)
                )
                changed = (
                    f" Training params changed since the checkpoint: {format_changes(changes)}." if changes else ""
                )
                warnings.warn(
                    f"resume: param_scheduler gives {key} {_show(now[key])} for optimizer step {last_step}, but the run "
                    f"that wrote the checkpoint used {_show(saved)}; {key} will jump instead of continuing.{changed} "
                    "Resume with the original params to continue the same schedule.",
                    UserWarning,
                    stacklevel=3,
                )


def describe(raw: Any) -> str:
    """``[LinearLR, CosineAnnealingLR]``: the class names of a param_scheduler list."""
    try:
        return "[" + ", ".join(str(split_entry(entry, i)[0]) for i, entry in enumerate(raw or [])) + "]"
    except TypeError:
        return repr(raw)


def _show(values: list[float]) -> str:
    shown = [f"{float(value):.6g}" for value in values]
    return shown[0] if len(shown) == 1 else "[" + ", ".join(shown) + "]"


def _fresh_plateau() -> dict[str, Any]:
    return {"best": None, "num_bad_epochs": 0, "cooldown_counter": 0}


def build_param_scheduler_callbacks(
    training_params: Any, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> list[Callback]:
    """The callback of ``training_params.param_scheduler`` (none for an empty list).

    Raises:
        ValueError, TypeError: a bad entry, a key the optimizer lacks, begin >= end.
    """
    raw = training_params.get("param_scheduler") or []
    entries = parse_entries(raw)
    if not entries:
        return []
    segments = resolve_segments(entries, steps_per_epoch, int(training_params.max_epochs))
    return [ParamSchedulerCallback(list(raw), segments, optimizer, steps_per_epoch)]


def check_checkpoint_has_param_scheduler(
    stateful_callbacks: list[Callback], checkpoint: dict[str, Any], path: str
) -> None:
    """A checkpoint and the current run must both have a ``param_scheduler``, or both not.

    Raises:
        RuntimeError: one has and the other has not; names both.
    """
    current = next((c for c in stateful_callbacks if isinstance(c, ParamSchedulerCallback)), None)
    saved = checkpoint.get(CHECKPOINT_KEY)
    if (current is None) == (saved is None):
        return
    saved_text = describe(saved["param_scheduler"]) if saved is not None else "none"
    current_text = describe(current.raw) if current is not None else "none"
    raise RuntimeError(
        f"resume: checkpoint {path!r} was trained with param_scheduler {saved_text}, but the current param_scheduler "
        f"is {current_text}. Resume with the param_scheduler the checkpoint was trained with, or start a new experiment."
    )


def warn_on_resumed_jumps(callbacks: list[Callback], context: PhaseContext, checkpoint: dict[str, Any]) -> None:
    """Warn when the restored ``param_scheduler`` does not continue the checkpoint's values (see
    ``ParamSchedulerCallback.warn_on_resumed_jump``)."""
    for callback in callbacks:
        if isinstance(callback, ParamSchedulerCallback):
            callback.warn_on_resumed_jump(context, checkpoint)
