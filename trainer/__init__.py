"""The phasetrain Trainer."""

from trainer.params import DEFAULT_TRAINING_PARAMS, TRAINING_PARAMS, TrainingParams
from trainer.trainer import Trainer, TrainResult, seed_everything

__all__ = ["DEFAULT_TRAINING_PARAMS", "TRAINING_PARAMS", "TrainResult", "Trainer", "TrainingParams", "seed_everything"]
