"""A callback that SIGKILLs its own process after a given optimiser step (the resume tests' crash)."""

from __future__ import annotations

import os
import signal

from lightning.pytorch.callbacks import Callback


class KillAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
