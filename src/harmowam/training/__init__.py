"""Training utilities shared by the stage modules: weight averaging and the optimiser recipe."""

from harmowam.training.ema import ExponentialMovingAverage
from harmowam.training.optim import decay_and_no_decay, warmup_cosine

__all__ = ["ExponentialMovingAverage", "decay_and_no_decay", "warmup_cosine"]
