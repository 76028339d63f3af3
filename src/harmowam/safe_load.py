"""Reading checkpoints without running code from them.

A ``.ckpt`` is a pickle, and unpickling can call any function the file names: a
crafted checkpoint handed to ``harmowam eval`` could run a shell command. Every
checkpoint the project reads goes through here with ``weights_only=True`` (tensors,
numbers, strings and plain containers only; harmowam's own checkpoints hold nothing
else), and a refused file is reported by name. World models saved with
``save_pretrained`` are read from safetensors only.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class UnsafeCheckpointError(ValueError):
    """A checkpoint that holds more than weights and plain values."""


def _refused(path: Path, exc: Exception) -> UnsafeCheckpointError:
    detail = str(exc).strip().splitlines()
    reason = next((line for line in detail if "Unsupported global" in line or "GLOBAL" in line), detail[0] if detail else "")
    return UnsafeCheckpointError(f"checkpoint '{path}' was refused: it holds objects other than tensors and plain values, "
                                 f"and harmowam never unpickles code from a file ({reason.strip()})")


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """The contents of a torch checkpoint, read with ``weights_only=True``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _refused(path, exc) from None
    except Exception as exc:
        raise ValueError(f"cannot read checkpoint '{path}': {type(exc).__name__}: {exc}") from exc
    if not isinstance(ckpt, dict):
        raise ValueError(f"checkpoint '{path}' holds a {type(ckpt).__name__}, not a dictionary of weights")
    return ckpt


def load_lightning_module(cls: type[T], path: str | Path, **kwargs: Any) -> T:
    """``cls.load_from_checkpoint(path, weights_only=True)``, with a refused file reported by name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint '{path}' does not exist")
    try:
        return cls.load_from_checkpoint(str(path), weights_only=True, **kwargs)  # type: ignore[attr-defined]
    except pickle.UnpicklingError as exc:
        raise _refused(path, exc) from None
