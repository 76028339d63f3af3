"""Progress output that reads well in a terminal and in a log file.

Progress bars redraw one line with carriage returns: in a log file that is hundreds
of kilobytes of partial lines, and Lightning's epoch ETA means nothing under
``max_time``. :class:`PlainProgress` prints one line every ``every_s`` seconds with
the step, the time left of the step and time budgets, and the latest logged losses;
the pipeline uses it instead of Lightning's bar when its output is not a terminal.
:func:`progress_bar` is tqdm, redrawn at most every 30 seconds when not a terminal.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Timer


def _hms(seconds: float) -> str:
    return str(timedelta(seconds=int(max(seconds, 0))))


class PlainProgress(L.Callback):
    def __init__(self, every_s: float = 30.0, keys: tuple[str, ...] = ("train/loss", "val/")) -> None:
        self.every_s, self.keys = every_s, keys
        self._start = self._last = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last = time.monotonic()
        limit = _max_time(trainer)
        print(f"[{type(pl_module).__name__}] training: max_steps {trainer.max_steps}, "
              f"max_time {_hms(limit) if limit is not None else 'none'}", flush=True)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            print(self.line(trainer, now - self._start), flush=True)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        print(self.line(trainer, time.monotonic() - self._start) + " (done)", flush=True)

    def line(self, trainer: L.Trainer, elapsed: float) -> str:
        step, max_steps = trainer.global_step, trainer.max_steps
        parts = [f"step {step}" + (f"/{max_steps}" if max_steps and max_steps > 0 else ""), f"elapsed {_hms(elapsed)}"]
        if step and max_steps and max_steps > 0:
            parts.append(f"steps left ~{_hms(elapsed / step * (max_steps - step))}")
        limit = _max_time(trainer)
        if limit is not None:
            parts.append(f"time left {_hms(limit - elapsed)}")
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if any(k.startswith(p) for p in self.keys) and getattr(v, "numel", lambda: 1)() == 1}
        parts += [f"{k} {v:.4g}" for k, v in sorted(metrics.items())]
        return ", ".join(parts)


def _max_time(trainer: L.Trainer) -> float | None:
    """The ``max_time`` budget in seconds, if the trainer has one."""
    for cb in trainer.callbacks:
        if isinstance(cb, Timer) and cb._duration is not None:
            return float(cb._duration)
    return None


def progress_bar(total: int, desc: str, unit: str, disable: bool = False) -> Any:
    """A tqdm bar on stderr; redrawn every 0.1 s in a terminal, every 30 s in a log file."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=disable, mininterval=0.1 if sys.stderr.isatty() else 30.0)
