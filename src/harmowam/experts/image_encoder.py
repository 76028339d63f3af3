"""Image tokens from a timm backbone, with weights from a local file only.

The default is a small ViT built from scratch (CPU friendly). A GPU user names a
real backbone (``vit_base_patch16_siglip_224`` for the predictive side,
``vit_small_patch14_dinov2`` for the reactive side, as in the paper) and a local
weights file through ``pretrained_file``; nothing is fetched from a hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from harmowam.world_models.base import to_unit_range

DEFAULT_ENCODER = "vit_tiny_patch16_224"
DEFAULT_ENCODER_KWARGS: dict[str, Any] = {"patch_size": 8, "depth": 4}


class ImageTokenEncoder(nn.Module):
    """uint8 frames ``[B, 3, H, W]`` -> patch tokens ``[B, N, dim]`` (prefix tokens dropped)."""

    def __init__(self, model_name: str = DEFAULT_ENCODER, image_size: int = 64,
                 model_kwargs: dict[str, Any] | None = None, pretrained_file: str | None = None) -> None:
        super().__init__()
        kwargs = dict(DEFAULT_ENCODER_KWARGS if model_kwargs is None else model_kwargs)
        if pretrained_file is not None:
            path = Path(pretrained_file)
            if not path.is_file():
                raise FileNotFoundError(f"pretrained_file '{path}' for encoder '{model_name}' does not exist")
            kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        try:
            self.model = timm.create_model(model_name, pretrained=pretrained_file is not None, num_classes=0,
                                           img_size=image_size, **kwargs)
        except RuntimeError as exc:
            if "Unknown model" in str(exc):
                raise KeyError(f"unknown timm model '{model_name}'; see timm.list_models()") from exc
            raise
        self.num_prefix_tokens = getattr(self.model, "num_prefix_tokens", 0)
        self.dim = self.model.num_features
        cfg = self.model.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)
        with torch.no_grad():
            self.num_tokens = self(torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8)).shape[1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (to_unit_range(images) + 1) / 2
        x = (x - self.mean) / self.std
        tokens = self.model.forward_features(x)
        if tokens.dim() == 4:  # a convolutional backbone: [B, C, h, w] -> [B, h*w, C]
            return tokens.flatten(2).transpose(1, 2)
        return tokens[:, self.num_prefix_tokens:]

    @property
    def grid_size(self) -> int:
        side = int(round(self.num_tokens ** 0.5))
        if side * side != self.num_tokens:
            raise ValueError(f"encoder tokens ({self.num_tokens}) do not form a square grid")
        return side
