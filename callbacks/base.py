"""Callback, PhaseCallback and the dispatcher that calls them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from callbacks.context import PhaseContext
from callbacks.phases import PHASE_TO_METHOD, Phase


class Callback:
    """Base class for callbacks: override the methods of the phases you need.

    Method names are SuperGradients'; ``PHASE_TO_METHOD`` says which phase calls which method.
    Only overridden methods are called, so an unused hook costs nothing.

    A callback that must survive a resume sets ``checkpoint_key`` and implements
    ``state_dict``/``load_state_dict``: its state is then saved in every checkpoint under that key.
    """

    checkpoint_key: str | None = None

    def on_training_start(self, context: PhaseContext) -> None: ...
    def on_train_loader_start(self, context: PhaseContext) -> None: ...
    def on_train_batch_start(self, context: PhaseContext) -> None: ...
    def on_train_batch_loss_end(self, context: PhaseContext) -> None: ...
    def on_train_batch_backward_end(self, context: PhaseContext) -> None: ...
    def on_train_batch_gradient_step_start(self, context: PhaseContext) -> None: ...
    def on_train_batch_gradient_step_end(self, context: PhaseContext) -> None: ...
    def on_train_batch_end(self, context: PhaseContext) -> None: ...
    def on_train_loader_end(self, context: PhaseContext) -> None: ...
    def on_validation_loader_start(self, context: PhaseContext) -> None: ...
    def on_validation_batch_start(self, context: PhaseContext) -> None: ...
    def on_validation_batch_end(self, context: PhaseContext) -> None: ...
    def on_validation_loader_end(self, context: PhaseContext) -> None: ...
    def on_validation_end_best_epoch(self, context: PhaseContext) -> None: ...
    def on_test_loader_start(self, context: PhaseContext) -> None: ...
    def on_test_batch_start(self, context: PhaseContext) -> None: ...
    def on_test_batch_end(self, context: PhaseContext) -> None: ...
    def on_test_loader_end(self, context: PhaseContext) -> None: ...
    def on_training_end(self, context: PhaseContext) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """State saved in checkpoints under ``checkpoint_key`` (only when that is set)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""


class PhaseCallback(Callback):
    """A callback bound to one phase: ``self(context)`` runs at that phase.

    Args:
        phase: a Phase or its name ("TRAIN_EPOCH_END").
    """

    def __init__(self, phase: Phase | str):
        self.phase = Phase.coerce(phase, where=f"{type(self).__name__} phase")

    def __call__(self, context: PhaseContext) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(context).")


def _handlers_of(callback: Callback, phase: Phase) -> list[Callable[[PhaseContext], None]]:
    """The bound functions ``callback`` runs at ``phase`` (its phase call, then an overridden method)."""
    handlers = []
    if isinstance(callback, PhaseCallback):
        # Coerced here too: SuperGradients-style subclasses may set ``self.phase`` (even as a string) themselves.
        bound = Phase.coerce(
            getattr(callback, "phase", None), where=f"phase_callbacks: {type(callback).__name__}.phase"
        )
        if bound is phase:
            handlers.append(callback.__call__)
    method_name = PHASE_TO_METHOD[phase]
    if getattr(type(callback), method_name) is not getattr(Callback, method_name):
        handlers.append(getattr(callback, method_name))
    return handlers


class CallbackList:
    """Calls the callbacks in order at each phase, skipping those that do not handle it.

    The per-phase handler lists are built once, so firing an event that nobody handles is a
    dictionary lookup and an empty loop.

    Attributes:
        handlers: {phase: the bound functions ``fire`` runs, in order}. The training loop runs the
            batch phases' handlers from it in place (a call per batch phase saved).
    """

    def __init__(self, callbacks: Iterable[Callback]):
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(
                    f"phase_callbacks: {callback!r} is a {type(callback).__name__}, not a Callback; "
                    "derive it from callbacks.Callback or callbacks.PhaseCallback."
                )
        self.handlers: dict[Phase, tuple[Callable[[PhaseContext], None], ...]] = {
            phase: tuple(handler for callback in self.callbacks for handler in _handlers_of(callback, phase))
            for phase in Phase
        }

    def fire(self, phase: Phase, context: PhaseContext) -> None:
        """Run every handler of ``phase`` in callback order."""
        for handler in self.handlers[phase]:
            handler(context)

    def stateful(self) -> list[Callback]:
        """Callbacks whose state goes into checkpoints."""
        return [callback for callback in self.callbacks if callback.checkpoint_key]
