"""``last.ckpt`` on a step interval, independent of validation.

ModelCheckpoint writes when validation runs (every 250 steps in the shipped stage-2
config), so a killed run lost up to that many steps. This callback rewrites the
ModelCheckpoint's ``last.ckpt`` every ``every_n_steps`` optimiser steps and at the end of training (so
``last.ckpt`` is the final state; give the ModelCheckpoint ``enable_version_counter: false``, or it
writes its own last as ``last-v1.ckpt`` beside this file); resume with
``lightning fit -c CONFIG --ckpt_path runs/<name>/version_<k>/checkpoints/last.ckpt``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


class PeriodicLastCheckpoint(Callback):
    def __init__(self, every_n_steps: int = 100) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be at least 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self._start_step: int | None = None  # the global step this fit started from

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step % self.every_n_steps == 0:
            self._save_last(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The final state, when the run ended between two intervals: without this, last.ckpt of a 1250-step run
        # held step 1200, and the pipeline evaluated that. A fit that trained no step (a finished run resumed)
        # leaves the file as it is, so an evaluation's fingerprint of it still holds.
        if trainer.global_step != self._start_step and trainer.global_step % self.every_n_steps:
            self._save_last(trainer)

    @staticmethod
    def _save_last(trainer: L.Trainer) -> None:
        ckpt = trainer.checkpoint_callback
        if not isinstance(ckpt, ModelCheckpoint) or ckpt.dirpath is None:
            return
        # weights_only=False here means "with optimiser and loop state", what a resume needs
        trainer.save_checkpoint(Path(ckpt.dirpath) / f"{ckpt.CHECKPOINT_NAME_LAST}{ckpt.FILE_EXTENSION}",
                                weights_only=False)
