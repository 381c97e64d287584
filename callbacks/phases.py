"""The phases of a training run and the one table mapping each phase to its Callback method."""

from __future__ import annotations

from enum import Enum
from typing import Any

from registry import unknown_name_message


class Phase(str, Enum):
    """Points in the loop where callbacks run, in the order they fire.

    The names are SuperGradients' (so its callbacks port), with these differences:
    ``TRAIN_BATCH_END`` fires when the batch is complete (after backward and after the optimizer
    step when one happens; SuperGradients fires it right after the loss, before backward), and the
    finer ``TRAIN_BATCH_START``, ``TRAIN_BATCH_LOSS_END``, ... phases are added so every
    ``Callback`` method has exactly one phase.
    """

    PRE_TRAINING = "PRE_TRAINING"
    TRAIN_EPOCH_START = "TRAIN_EPOCH_START"
    TRAIN_BATCH_START = "TRAIN_BATCH_START"
    TRAIN_BATCH_LOSS_END = "TRAIN_BATCH_LOSS_END"
    TRAIN_BATCH_BACKWARD_END = "TRAIN_BATCH_BACKWARD_END"
    TRAIN_BATCH_GRADIENT_STEP_START = "TRAIN_BATCH_GRADIENT_STEP_START"
    TRAIN_BATCH_STEP = "TRAIN_BATCH_STEP"
    TRAIN_BATCH_END = "TRAIN_BATCH_END"
    TRAIN_EPOCH_END = "TRAIN_EPOCH_END"
    VALIDATION_EPOCH_START = "VALIDATION_EPOCH_START"
    VALIDATION_BATCH_START = "VALIDATION_BATCH_START"
    VALIDATION_BATCH_END = "VALIDATION_BATCH_END"
    VALIDATION_EPOCH_END = "VALIDATION_EPOCH_END"
    VALIDATION_END_BEST_EPOCH = "VALIDATION_END_BEST_EPOCH"
    TEST_START = "TEST_START"
    TEST_BATCH_START = "TEST_BATCH_START"
    TEST_BATCH_END = "TEST_BATCH_END"
    TEST_END = "TEST_END"
    POST_TRAINING = "POST_TRAINING"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def coerce(cls, value: Any, where: str = "phase") -> Phase:
        """Return the Phase for a Phase or its name string.

        Raises:
            ValueError: unknown name; lists the phases and the closest match.
            TypeError: neither a Phase nor a string.
        """
        if isinstance(value, Phase):
            return value
        if isinstance(value, str):
            try:
                return cls[value]
            except KeyError:
                raise ValueError(unknown_name_message(where, value, cls.__members__)) from None
        raise TypeError(f"{where}: expected a Phase or a phase name string, got {type(value).__name__} {value!r}.")


PHASE_TO_METHOD: dict[Phase, str] = {
    Phase.PRE_TRAINING: "on_training_start",
    Phase.TRAIN_EPOCH_START: "on_train_loader_start",
    Phase.TRAIN_BATCH_START: "on_train_batch_start",
    Phase.TRAIN_BATCH_LOSS_END: "on_train_batch_loss_end",
    Phase.TRAIN_BATCH_BACKWARD_END: "on_train_batch_backward_end",
    Phase.TRAIN_BATCH_GRADIENT_STEP_START: "on_train_batch_gradient_step_start",
    Phase.TRAIN_BATCH_STEP: "on_train_batch_gradient_step_end",
    Phase.TRAIN_BATCH_END: "on_train_batch_end",
    Phase.TRAIN_EPOCH_END: "on_train_loader_end",
    Phase.VALIDATION_EPOCH_START: "on_validation_loader_start",
    Phase.VALIDATION_BATCH_START: "on_validation_batch_start",
    Phase.VALIDATION_BATCH_END: "on_validation_batch_end",
    Phase.VALIDATION_EPOCH_END: "on_validation_loader_end",
    Phase.VALIDATION_END_BEST_EPOCH: "on_validation_end_best_epoch",
    Phase.TEST_START: "on_test_loader_start",
    Phase.TEST_BATCH_START: "on_test_batch_start",
    Phase.TEST_BATCH_END: "on_test_batch_end",
    Phase.TEST_END: "on_test_loader_end",
    Phase.POST_TRAINING: "on_training_end",
}
"""Phase -> Callback method name. The only place this mapping is written."""
