"""The values of every scheduled key at every optimizer step: MMEngine's chained timeline, replayed.

MMEngine builds its schedulers in list order (each takes its first step then), steps the per-step
ones after every iteration, the per-epoch ones after every train epoch and the plateau ones after
every validation. ``ParamTimeline`` runs the same steps in the same order on plain floats, so the
value at optimizer step k is a pure function of the segments, the base values, k and the plateau
reductions so far (the only state, which checkpoints carry). It walks forward from where it last
stood: one step per optimizer step in training; a jump backwards (a preview, a resume) replays from
the start.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch

from registry import did_you_mean
from schedulers import param_schedule_math
from schedulers.param_scheduler_config import WHERE, Segment


class ParamTimeline:
    """Per-class values of each scheduled key along the run.

    Param groups that start from the same values and get the same per-group arguments always hold
    the same values, so the timeline computes one value per such *class* of groups.

    Args:
        segments: the resolved segments, in list order.
        initial: key -> the value each class holds before any scheduler is built.
        bases: per segment, the base value of each class (MMEngine's ``initial_<key>``).
        representatives: the index of one param group of each class (for per-group arguments).
        steps_per_epoch: S.
    """

    def __init__(
        self,
        segments: Sequence[Segment],
        initial: dict[str, list[float]],
        bases: list[list[float]],
        representatives: list[int],
        steps_per_epoch: int,
    ):
        self.segments = list(segments)
        self.initial = initial
        self.bases = bases
        self.representatives = representatives
        self.steps_per_epoch = steps_per_epoch
        self.per_step = [(i, s) for i, s in enumerate(self.segments) if not s.by_epoch]
        self.per_epoch = [(i, s) for i, s in enumerate(self.segments) if s.by_epoch and s.shape != "ReduceOnPlateau"]
        self.reductions: dict[int, list[int]] = {}
        """Epoch boundary e (the start of epoch e) -> indices of the plateau segments that reduced there."""
        self.position = -1
        self.current: dict[str, list[float]] = {}

    def reset(self) -> None:
        """Back to the values optimizer step 0 uses (every segment's first step, in list order)."""
        self.current = {key: list(values) for key, values in self.initial.items()}
        for index, segment in enumerate(self.segments):
            if segment.shape != "ReduceOnPlateau" and segment.begin <= 0 < segment.end:
                self._apply(index, segment, 0)
        self.position = 0

    def values_at(self, global_step: int) -> dict[str, list[float]]:
        """key -> per-class values that optimizer step ``global_step`` uses (do not modify)."""
        if global_step < self.position or self.position < 0:
            self.reset()
        while self.position < global_step:
            self._advance()
        return self.current

    def add_reduction(self, boundary: int, segment_index: int) -> None:
        """Record that plateau segment ``segment_index`` reduced its key at the start of epoch ``boundary``.

        Raises:
            RuntimeError: the timeline already stands past that boundary (the reduction would not apply).
        """
        if self.position >= boundary * self.steps_per_epoch:
            raise RuntimeError(
                f"param_scheduler: a plateau reduction for epoch {boundary} arrived after step {self.position} "
                "was computed; plateau reductions must be recorded before the next epoch's first step."
            )
        self.reductions.setdefault(boundary, []).append(segment_index)

    def _advance(self) -> None:
        step = self.position + 1
        for index, segment in self.per_step:
            if segment.begin <= step < segment.end:
                self._apply(index, segment, step - segment.begin)
        if step % self.steps_per_epoch == 0:
            epoch = step // self.steps_per_epoch
            for index, segment in self.per_epoch:
                if segment.begin <= epoch < segment.end:
                    self._apply(index, segment, epoch - segment.begin)
            for index in self.reductions.get(epoch, ()):
                self._reduce(index, self.segments[index])
        self.position = step

    def _apply(self, index: int, segment: Segment, t: int) -> None:
        values = self.current[segment.key]
        bases = self.bases[index]
        if segment.shape == "OneCycle":
            for c, value in enumerate(values):
                values[c] = param_schedule_math.one_cycle_value(
                    segment.args, t, value, bases[c], self.representatives[c]
                )
            return
        step = param_schedule_math.CHAINED_STEPS[segment.shape]
        args = segment.args
        for c, value in enumerate(values):
            values[c] = step(args, t, value, bases[c])

    def _reduce(self, index: int, segment: Segment) -> None:
        values = self.current[segment.key]
        for c, value in enumerate(values):
            values[c] = param_schedule_math.plateau_reduce(segment.args, value, self.representatives[c])


def key_accessors(optimizer: torch.optim.Optimizer, key: str, where: str) -> tuple[Callable, Callable]:
    """(read, write) of ``key`` in a param group: ``momentum`` is SGD/RMSprop's momentum or Adam's betas[0].

    Raises:
        ValueError: a momentum schedule for an optimizer with neither; a key the groups lack or
            that does not hold a number (lists the keys they have).
    """
    groups = optimizer.param_groups
    if key == "momentum" and "momentum" not in optimizer.defaults:
        if "betas" not in optimizer.defaults:
            raise ValueError(
                f"{where}: a momentum schedule needs an optimizer with 'momentum' (SGD, RMSprop) or 'betas' (Adam "
                f"family); {type(optimizer).__name__} has neither. Its param-group keys: {_number_keys(groups)}."
            )

        def write_beta(group: dict, value: float) -> None:
            group["betas"] = (value, group["betas"][1])

        return (lambda group: group["betas"][0]), write_beta
    for index, group in enumerate(groups):
        if key not in group or isinstance(group[key], bool) or not isinstance(group[key], numbers.Real):
            keys = _number_keys(groups)
            raise ValueError(
                f"{where}: param_name {key!r} is not a number-valued key of param group {index} of "
                f"{type(optimizer).__name__}; the groups have {keys}.{did_you_mean(key, keys)}"
            )

    def write(group: dict, value: float) -> None:
        group[key] = value

    return (lambda group: group[key]), write


def _number_keys(groups: list[dict]) -> list[str]:
    return sorted(
        key for key, value in groups[0].items() if isinstance(value, numbers.Real) and not isinstance(value, bool)
    )


def build_timeline(
    segments: list[Segment], optimizer: torch.optim.Optimizer, accessors: dict, steps_per_epoch: int
) -> tuple[ParamTimeline, list[int]]:
    """The timeline of ``segments`` over classes of param groups that always hold the same values, and
    the class of each group.

    Args:
        segments: the resolved segments.
        optimizer: the trainer's optimizer; its groups' current values are the starting values.
        accessors: key -> (read, write) of that key in a param group (``key_accessors``).
        steps_per_epoch: S.

    Raises:
        ValueError: a per-group list argument without one value per group.
    """
    groups = optimizer.param_groups
    keys = list(accessors)
    initial = {key: [float(accessors[key][0](group)) for group in groups] for key in keys}
    base_of = {key: list(initial[key]) for key in keys}
    if "lr" in base_of:
        base_of["lr"] = [float(group.get("initial_lr", group["lr"])) for group in groups]
    per_segment_bases = []
    for segment in segments:
        if segment.shape == "OneCycle":  # MMEngine overwrites initial_lr, the base of the segments after it
            eta_max = segment.args["eta_max"]
            maxima = eta_max if isinstance(eta_max, (list, tuple)) else [eta_max] * len(groups)
            base_of["lr"] = [value / segment.args["div_factor"] for value in maxima]
        per_segment_bases.append(list(base_of[segment.key]))
    per_group_args = [
        segment.args[name]
        for segment in segments
        for name in ("eta_max", "min_value")
        if isinstance(segment.args.get(name), (list, tuple))
    ]
    for values in per_group_args:
        if len(values) != len(groups):
            raise ValueError(f"{WHERE}: a per-group list {values!r} needs one value per param group ({len(groups)}).")
    signatures: dict[tuple, int] = {}
    class_of = []
    for g in range(len(groups)):
        signature = (
            tuple(initial[key][g] for key in keys),
            tuple(bases[g] for bases in per_segment_bases),
            tuple(values[g] for values in per_group_args),
        )
        class_of.append(signatures.setdefault(signature, len(signatures)))
    representatives = [class_of.index(c) for c in range(len(signatures))]
    timeline = ParamTimeline(
        segments,
        initial={key: [initial[key][g] for g in representatives] for key in keys},
        bases=[[bases[g] for g in representatives] for bases in per_segment_bases],
        representatives=representatives,
        steps_per_epoch=steps_per_epoch,
    )
    return timeline, class_of
