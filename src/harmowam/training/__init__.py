"""Training utilities shared by the stage modules: weight averaging, the optimiser recipe, and what makes a
killed run resumable (periodic checkpoints, the random state)."""

from harmowam.training.ema import ExponentialMovingAverage
from harmowam.training.optim import decay_and_no_decay, warmup_cosine
from harmowam.training.periodic_checkpoint import PeriodicLastCheckpoint

__all__ = ["ExponentialMovingAverage", "PeriodicLastCheckpoint", "decay_and_no_decay", "warmup_cosine"]
