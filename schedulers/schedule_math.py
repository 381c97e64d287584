"""The built-in schedules and warmups as pure functions of the schedule clock.

Each function returns the learning rate of one param group (its ``lr0``) at one point of the run;
the callbacks in schedulers.builtin and schedulers.warmup only write these values into the
optimizer, and a schedule preview or a plot can call them directly. Notation (see
schedulers.clock and docs/lr_schedules.md): ``k`` the optimizer step about to run, ``e`` the
epoch, ``S`` steps per epoch, ``E`` epochs, ``W`` warmup steps, ``C`` cooldown steps, ``t = k - W``
the main schedule's own clock over ``T = N - W - C`` steps, held at ``T - 1`` through the cooldown.

The expressions are written exactly as in the docs, so the floats equal the documented formulas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from schedulers.clock import ScheduleClock


def step_lr(lr0: float, clock: ScheduleClock, epoch: int, lr_updates: Sequence[int], lr_decay_factor: float) -> float:
    """StepLRScheduler: ``lr0 * g ** count(u in lr_updates with u < e)``.

    Epochs are absolute (the warmup epochs count); through the cooldown the epoch is held at the
    last one before it.
    """
    epoch = min(epoch, clock.max_epochs - clock.cooldown_epochs - 1)
    passed = sum(1 for update in lr_updates if update < epoch)
    return lr0 * lr_decay_factor**passed


def step_lr_updates(step_lr_update_freq: int, clock: ScheduleClock) -> list[int]:
    """The ``lr_updates`` that ``step_lr_update_freq`` f means: the multiples of f from lr_warmup_epochs
    up to (not including) E - lr_cooldown_epochs, as in SuperGradients."""
    last = clock.max_epochs - clock.cooldown_epochs
    return [epoch for epoch in range(step_lr_update_freq, last, step_lr_update_freq) if epoch >= clock.warmup_epochs]


def cosine_lr(lr0: float, clock: ScheduleClock, global_step: int, cosine_final_lr_ratio: float) -> float:
    """CosineLRScheduler: ``lr0*r + (lr0 - lr0*r) * 0.5 * (1 + cos(pi * t / T))``."""
    t, total = clock.main_position(global_step), clock.main_steps
    r = cosine_final_lr_ratio
    return lr0 * r + (lr0 - lr0 * r) * 0.5 * (1 + math.cos(math.pi * t / total))


def poly_lr(lr0: float, clock: ScheduleClock, global_step: int, poly_power: float) -> float:
    """PolyLRScheduler: ``lr0 * (1 - t / T) ** poly_power``."""
    t, total = clock.main_position(global_step), clock.main_steps
    return lr0 * (1 - t / total) ** poly_power


def exponential_lr(lr0: float, clock: ScheduleClock, global_step: int, lr_decay_factor: float) -> float:
    """ExponentialLRScheduler: ``lr0 * g ** (t / S)``, smooth per step."""
    t = clock.main_position(global_step)
    return lr0 * lr_decay_factor ** (t / clock.steps_per_epoch)


def function_lr(
    lr0: float, clock: ScheduleClock, global_step: int, lr_schedule_function: Callable[..., float]
) -> float:
    """FunctionLRScheduler: the user's function, called by keyword.

    ``f(initial_lr=lr0, epoch=e - lr_warmup_epochs, iter=step index within the epoch,
    max_epoch=E - lr_warmup_epochs - lr_cooldown_epochs, iters_per_epoch=S)``, where ``e`` and the
    step index come from ``k``; through the cooldown ``k`` is held at the last step before it.
    """
    step = min(global_step, clock.total_steps - clock.cooldown_steps - 1)
    epoch, step_in_epoch = divmod(step, clock.steps_per_epoch)
    return lr_schedule_function(
        initial_lr=lr0,
        epoch=epoch - clock.warmup_epochs,
        iter=step_in_epoch,
        max_epoch=clock.main_epochs,
        iters_per_epoch=clock.steps_per_epoch,
    )


FUNCTION_KEYWORDS = ("initial_lr", "epoch", "iter", "max_epoch", "iters_per_epoch")
"""The keyword arguments of a SuperGradients-form lr_schedule_function."""


def function_form(function: Callable[..., float], where: str) -> str:
    """Which form an lr_schedule_function has, from its signature.

    ``"keyword"`` (SuperGradients) when it accepts the five keywords of ``FUNCTION_KEYWORDS`` and
    cannot be called with one positional argument; ``"iteration"`` (MXNet, ``f(iteration) -> lr``)
    when it can be called with one positional argument and does not accept the five keywords.

    Raises:
        TypeError: the signature cannot be read, fits both forms, or fits neither.
    """
    import inspect

    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise TypeError(
            f"{where}: cannot read the signature of {function!r} to tell its form; wrap it in a def with one "
            "parameter (the iteration, from 1) or with the keywords " + ", ".join(FUNCTION_KEYWORDS) + "."
        ) from None
    keyword = _binds(signature, (), dict.fromkeys(FUNCTION_KEYWORDS, 0))
    iteration = _binds(signature, (1,), {})
    if keyword and iteration:
        raise TypeError(
            f"{where}: {getattr(function, '__name__', function)!r}{signature} fits both forms: it takes one positional "
            f"argument (MXNet's f(iteration)) and the keywords {', '.join(FUNCTION_KEYWORDS)} (SuperGradients'). "
            "Give the MXNet form exactly one parameter, or the keyword form its five parameters without defaults."
        )
    if not keyword and not iteration:
        raise TypeError(
            f"{where}: {getattr(function, '__name__', function)!r}{signature} fits neither form: MXNet's f(iteration) "
            f"-> lr (one parameter) or SuperGradients' f({', '.join(FUNCTION_KEYWORDS)}) -> lr."
        )
    return "keyword" if keyword else "iteration"


def _binds(signature, args: tuple, kwargs: dict) -> bool:
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def iteration_function_lr(
    clock: ScheduleClock, global_step: int, lr_schedule_function: Callable[[int], float]
) -> float:
    """FunctionLRScheduler, MXNet form: optimizer step k uses ``f(k + 1)`` (MXNet counts iterations
    from 1); through the cooldown k is held at the last step before it."""
    step = min(global_step, clock.total_steps - clock.cooldown_steps - 1)
    return lr_schedule_function(step + 1)


def warmup_start_lr(lr0: float, warmup_length: int, warmup_initial_lr: float | None = None) -> float:
    """The LR warmup starts from: ``warmup_initial_lr`` if given, else ``lr0 / (n + 1)``.

    Args:
        lr0: the group's initial_lr.
        warmup_length: n, the warmup length in its own unit (epochs or optimizer steps).
        warmup_initial_lr: the configured start for this group, or None.
    """
    return lr0 / (warmup_length + 1) if warmup_initial_lr is None else warmup_initial_lr


def linear_warmup_lr(lr0: float, start: float, position: int, warmup_length: int) -> float:
    """Linear warmup: ``start + (lr0 - start) * position / n``; ``lr0`` from ``position >= n`` on."""
    if position >= warmup_length:
        return lr0
    return start + (lr0 - start) * position / warmup_length


def linear_epoch_warmup_lr(
    lr0: float, clock: ScheduleClock, epoch: int, warmup_initial_lr: float | None = None
) -> float:
    """LinearEpochLRWarmup at epoch ``e``: from ``start`` at e = 0 up to lr0 at e = lr_warmup_epochs."""
    start = warmup_start_lr(lr0, clock.warmup_epochs, warmup_initial_lr)
    return linear_warmup_lr(lr0, start, epoch, clock.warmup_epochs)


def linear_batch_warmup_lr(
    lr0: float, clock: ScheduleClock, global_step: int, warmup_initial_lr: float | None = None
) -> float:
    """LinearBatchLRWarmup at step ``k``: from ``start`` at k = 0 up to lr0 at k = lr_warmup_steps."""
    start = warmup_start_lr(lr0, clock.warmup_steps, warmup_initial_lr)
    return linear_warmup_lr(lr0, start, global_step, clock.warmup_steps)


def warm_restart_cycle(
    main_step: int, steps_per_epoch: int, restart_period_epochs: int, restart_period_mult: int
) -> tuple[int, int, int]:
    """Where main-clock step ``t`` falls in the warm-restart cycles: ``(c, t_c, T_c)``.

    Cycle c (from 0) lasts ``P * m**c`` epochs, ``T_c = P * m**c * S`` steps; ``t_c`` is the step's
    position inside its cycle.
    """
    cycle, start = 0, 0
    length = restart_period_epochs * steps_per_epoch
    while main_step >= start + length:
        start += length
        cycle += 1
        length = restart_period_epochs * restart_period_mult**cycle * steps_per_epoch
    return cycle, main_step - start, length


def cosine_warm_restarts_lr(
    lr0: float,
    clock: ScheduleClock,
    global_step: int,
    restart_period_epochs: int,
    restart_period_mult: int,
    cosine_final_lr_ratio: float,
    restart_lr_decay: float,
) -> float:
    """CosineWarmRestartsLRScheduler: ``peak*r + (peak - peak*r) * 0.5 * (1 + cos(pi * t_c / T_c))``
    with ``peak = lr0 * d**c``, for the cycle c, position t_c and length T_c of ``t = k - W``."""
    t = clock.main_position(global_step)
    cycle, position, length = warm_restart_cycle(t, clock.steps_per_epoch, restart_period_epochs, restart_period_mult)
    peak = lr0 * restart_lr_decay**cycle
    r = cosine_final_lr_ratio
    return peak * r + (peak - peak * r) * 0.5 * (1 + math.cos(math.pi * position / length))


def warm_restart_epochs(clock: ScheduleClock, restart_period_epochs: int, restart_period_mult: int) -> list[int]:
    """The epochs (counted from 1) after whose end the warm-restart schedule restarts within the run.

    Cycle c ends with main-clock step ``B_{c+1} - 1``, ``B_{c+1} = S * P * (1 + m + ... + m**c)``;
    its epoch is the one holding global step ``W + B_{c+1} - 1``. Only cycles followed by another
    inside the main schedule (``B_{c+1} < T``) count; the last epoch of the run is not a restart.
    """
    epochs, boundary, cycle = [], 0, 0
    while True:
        boundary += restart_period_epochs * restart_period_mult**cycle * clock.steps_per_epoch
        if boundary >= clock.main_steps:
            return epochs
        epochs.append((clock.warmup_steps + boundary - 1) // clock.steps_per_epoch + 1)
        cycle += 1
