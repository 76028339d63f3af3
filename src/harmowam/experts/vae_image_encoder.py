"""Image tokens from the world model's VAE encoder: an encoder pretrained on the broad action-free video.

Stage 1 trains the VAE on every frame of the demonstrations and of the broad ``wm_video``
regime (other backgrounds, positions, objects). The shared image encoder of stage 2 is
otherwise trained from scratch on the narrow demonstrations only, which is what breaks
under an unseen background; starting from the VAE's encoder gives it the broad video's
features, the simulation-scale counterpart of a SigLIP or DINOv2 pretrained on the web.
Select it with ``image_encoder: {name: world_model_vae, trainable: false}``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from harmowam.world_models.base import to_unit_range


class VaeImageEncoder(nn.Module):
    """uint8 frames ``[B, 3, H, W]`` -> tokens ``[B, grid * grid, C]`` from a copy of a VAE's encoder trunk
    (down blocks and middle block, before the latent projection), average-pooled to ``grid``."""

    def __init__(self, vae: nn.Module, image_size: int, trainable: bool = False, grid: int | None = None) -> None:
        super().__init__()
        encoder = copy.deepcopy(vae.encoder)  # fine-tuning it leaves the frozen world model as it was
        self.conv_in, self.down_blocks, self.mid_block = encoder.conv_in, encoder.down_blocks, encoder.mid_block
        self.norm, self.act = encoder.conv_norm_out, encoder.conv_act
        self.trainable = trainable
        self.requires_grad_(trainable)
        self.dim = int(vae.config.block_out_channels[-1])
        self.grid = grid or max(image_size // 8, 1)  # as many tokens as the default ViT's 8-pixel patches
        self.num_tokens = self.grid * self.grid

    @property
    def grid_size(self) -> int:
        return self.grid

    def train(self, mode: bool = True) -> "VaeImageEncoder":
        return super().train(mode and self.trainable)  # frozen: its normalisation stays in inference mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            x = self.conv_in(to_unit_range(images))
            for block in self.down_blocks:
                x = block(x)
            x = self.act(self.norm(self.mid_block(x)))
            x = F.adaptive_avg_pool2d(x, self.grid)
        return x.flatten(2).transpose(1, 2)
