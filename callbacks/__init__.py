"""Phases, the context callbacks see, and the callbacks the trainer ships."""

from callbacks.base import Callback, CallbackList, PhaseCallback
from callbacks.checkpoint import CheckpointSaver, atomic_save, load_checkpoint
from callbacks.clipping import GradientClipping
from callbacks.context import PhaseContext
from callbacks.ema import ModelEMA
from callbacks.phases import PHASE_TO_METHOD, Phase
from callbacks.progress import ProgressBar
from callbacks.snapshots import SnapshotSaver
from callbacks.swa import SWALRSchedule, SWAModel

__all__ = [
    "PHASE_TO_METHOD",
    "Callback",
    "CallbackList",
    "CheckpointSaver",
    "GradientClipping",
    "ModelEMA",
    "Phase",
    "PhaseCallback",
    "PhaseContext",
    "ProgressBar",
    "SWALRSchedule",
    "SWAModel",
    "SnapshotSaver",
    "atomic_save",
    "load_checkpoint",
]
