"""Training: the family-agnostic loop (``trainer``) and a run's resumable state (``state``)."""
from .state import TrainingError
from .trainer import Trainer, epoch_seed, fixed_noise, read_log, resolve_device, seed_everything, train

__all__ = ["Trainer", "TrainingError", "epoch_seed", "fixed_noise", "read_log", "resolve_device",
           "seed_everything", "train"]
