"""Per-key normalisation from a dataset's stored statistics.

A module with buffers, so that a trained policy carries the statistics it was
trained with and can unnormalise its actions without the dataset at hand.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

MODES = ("mean_std", "min_max", "identity")


class Normalizer(nn.Module):
    """``mean_std``: (x - mean) / std. ``min_max``: to [-1, 1] over the stored range."""

    def __init__(self, stats: Mapping[str, Mapping[str, np.ndarray | list]], modes: Mapping[str, str]) -> None:
        super().__init__()
        self.modes = dict(modes)
        for key, mode in self.modes.items():
            if mode not in MODES:
                raise ValueError(f"normalisation mode '{mode}' for '{key}' unknown; modes: {', '.join(MODES)}")
            if mode == "identity":
                continue
            if key not in stats:
                raise KeyError(f"no statistics for key '{key}'; the dataset has {sorted(stats)}")
            # statistics may arrive as arrays, lists or tensors on any device (a checkpoint mapped to CUDA)
            s = {k: v.detach().float().cpu() if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v), dtype=torch.float32)
                 for k, v in stats[key].items()}
            if mode == "mean_std":
                offset, scale = s["mean"], s["std"]
            else:
                offset, scale = (s["max"] + s["min"]) / 2, (s["max"] - s["min"]) / 2
            self.register_buffer(f"{key}_offset", offset)
            self.register_buffer(f"{key}_scale", scale.clamp_min(1e-6))

    def _params(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.modes.get(key, "identity") == "identity":
            return None
        return getattr(self, f"{key}_offset"), getattr(self, f"{key}_scale")

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        p = self._params(key)
        return x if p is None else (x - p[0].to(x)) / p[1].to(x)

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        p = self._params(key)
        return x if p is None else x * p[1].to(x) + p[0].to(x)
