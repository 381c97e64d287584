"""Errors that end a run for a reason the message explains fully (no traceback needed).

``phasetrain train`` prints a ``TrainingFailure`` as one ``error: <message>`` line and exits with
status 1; any other exception raised during training is a crash and keeps its traceback.
"""

from __future__ import annotations


class TrainingFailure(Exception):
    """Marks an error that stopped a run whose message says what happened, where, and what is intact."""


class NonFiniteLossError(RuntimeError, TrainingFailure):
    """A training loss was NaN or infinite (``nonfinite_loss: raise``, or too many consecutive skips)."""


class NonFiniteWeightsError(RuntimeError, TrainingFailure):
    """The checkpoint saver refused to write weights that hold NaN or infinite values."""


class CheckpointWriteError(OSError, TrainingFailure):
    """Writing a checkpoint failed (no space left, ...); the previous file is intact."""


class ShortLoaderWarning(UserWarning):
    """A loader yielded fewer batches than its ``len()`` said."""
