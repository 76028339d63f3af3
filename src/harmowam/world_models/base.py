"""The contract of a world-model backbone: explicit frames and implicit features."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harmowam.noise import Generators


@dataclass
class WorldModelOutput:
    """What one prediction yields; a field is None when it was not asked for.

    frames:   predicted future frames ``[B, K, 3, H, W]`` in [-1, 1] (explicit output)
    features: denoiser hidden states ``[B, K, N, D]``: N tokens per predicted frame (implicit output)
    latents:  the predicted future latents ``[B, C, K, h, w]``
    """

    frames: torch.Tensor | None = None
    features: torch.Tensor | None = None
    latents: torch.Tensor | None = None


class WorldModel(nn.Module, ABC):
    """A video model that, given the current frame and instruction, imagines K future frames."""

    num_future_frames: int
    #: environment steps between consecutive predicted frames
    frame_stride: int
    image_size: int
    #: width D of the implicit features
    feature_dim: int
    #: tokens N per predicted frame in the implicit features
    tokens_per_frame: int

    @abstractmethod
    def predict(self, image: torch.Tensor, instructions: list[str], decode: bool | int = True,
                features: bool = True, generator: Generators = None,
                num_steps: int | None = None) -> WorldModelOutput:
        """Imagine the future from ``image`` (uint8 ``[B, 3, H, W]``); ``decode=False`` skips the frame decoder,
        an int ``n`` decodes only the first n predicted frames (``frames`` is then ``[B, n, 3, H, W]``);
        ``generator`` is one generator or one per sample (:func:`harmowam.noise.randn`);
        ``num_steps`` overrides the number of denoising steps (1: a single step, as Video Prediction Policy reads
        its features)."""

    @abstractmethod
    def get_config(self) -> dict:
        """A registry spec (``{"name": ..., **kwargs}``) that rebuilds this architecture without weights."""

    @abstractmethod
    def save_pretrained(self, path: str | Path) -> None: ...

    @classmethod
    @abstractmethod
    def from_pretrained(cls, path: str | Path) -> "WorldModel": ...


def frames_to_decode(decode: bool | int, num_future_frames: int) -> int:
    """How many leading predicted frames ``predict(decode=...)`` decodes: all for True, none for False."""
    if isinstance(decode, bool):
        return num_future_frames if decode else 0
    if not 0 <= decode <= num_future_frames:
        raise ValueError(f"decode={decode}: a world model of {num_future_frames} predicted frames decodes 0 to "
                         f"{num_future_frames} of them")
    return int(decode)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (any leading shape, channels before H, W) to floats in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """Frames in [-1, 1] (e.g. predicted ones) to uint8, the inverse of :func:`to_unit_range` up to rounding."""
    return ((frames + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
