"""The reactive expert: inverse dynamics on imagined frames (the Imagine-then-Execute side).

For each predicted frame ``V_k`` (``k = 1..K``, ``stride`` env steps apart), patch
tokens of the previous frame and of ``V_k`` from a timm encoder are concatenated
along the token axis with the world model's implicit features for ``V_k``
(average-pooled, projected to the same width); one attention layer mixes them; a
multi-scale convolutional decoder on ``V_k``'s token grid regresses the ``stride``
actions that lead from the previous frame to ``V_k``. The chunk is the first H of
those actions, so only the first ``ceil(H / stride)`` predicted frames are read (3 of
the world model's 4 with the defaults: the fourth frame's actions fall outside the
chunk and cost a quarter of the expert's time for nothing). Loss: Smooth L1 with beta 0.1.

It trains on the world model's own predictions by default (``train_on="predicted"``:
what it reads at inference; with a world model that predicts only a little better
than copying the frame, real future frames are a different input) or on real future
frames (``"real"``); at inference it always reads predicted frames.
``use_world_model_features=False`` is the paper's ablation without F^V.
``use_state`` adds the proprioceptive state as one more token: the hand's position is
then read exactly instead of being estimated from a 64-pixel frame.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harmowam.experts.base import FEATURES, FRAMES, ActionExpert, ExpertContext, PolicyShapes, masked_mean
from harmowam.experts.image_encoder import ImageTokenEncoder
from harmowam.world_models.base import to_uint8


#: a small ViT: it encodes 1 + K frames per sample, so it sets stage 2's step time (measured forward and
#: backward at batch 24 on 2 cores: 0.48 s at depth 4 and width 192, 0.12 s at this size)
DEFAULT_ENCODER_KWARGS: dict[str, Any] = {"patch_size": 8, "depth": 2, "embed_dim": 96, "num_heads": 3}


class MultiScaleConvDecoder(nn.Module):
    """Token grid ``[B, C, g, g]`` -> vector: convolutions at g, g/2, g/4, pooled and concatenated."""

    def __init__(self, channels: int, hidden: int, out_dim: int, scales: int = 3) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        c = channels
        for i in range(scales):
            stride = 1 if i == 0 else 2
            self.stages.append(nn.Sequential(nn.Conv2d(c, hidden, 3, stride, 1), nn.GroupNorm(8, hidden), nn.GELU()))
            c = hidden
        self.head = nn.Sequential(nn.Linear(hidden * scales, hidden), nn.GELU(), nn.Linear(hidden, out_dim))

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        pooled = []
        x = grid
        for stage in self.stages:
            x = stage(x)
            pooled.append(x.mean(dim=(2, 3)))
        return self.head(torch.cat(pooled, dim=-1))


class ReactiveExpert(ActionExpert):
    #: it reads one token per predicted frame: the mean of the world model's tokens for that frame
    feature_tokens_per_frame = 1

    def __init__(
        self,
        shapes: PolicyShapes,
        encoder: str = "vit_tiny_patch16_224",
        encoder_kwargs: dict[str, Any] | None = None,
        pretrained_file: str | None = None,
        width: int = 96,
        heads: int = 4,
        use_world_model_features: bool = True,
        train_on: str = "predicted",
        smooth_l1_beta: float = 0.1,
        use_state: bool = False,
    ) -> None:
        super().__init__(shapes)
        if train_on not in ("real", "predicted"):
            raise ValueError(f"train_on must be 'real' or 'predicted', got '{train_on}'")
        self.train_on, self.beta = train_on, smooth_l1_beta
        self.trains_on_real_frames = train_on == "real"
        self.use_features = use_world_model_features
        self.needs = frozenset({FRAMES, FEATURES}) if use_world_model_features else frozenset({FRAMES})
        kwargs = DEFAULT_ENCODER_KWARGS if encoder_kwargs is None and pretrained_file is None else encoder_kwargs
        self.encoder = ImageTokenEncoder(encoder, shapes.image_size, kwargs, pretrained_file)
        self.grid = self.encoder.grid_size
        self.token_proj = nn.Linear(self.encoder.dim, width)
        # previous frame, target frame, feature token (and the state token)
        self.frame_embed = nn.Parameter(torch.zeros(4 if use_state else 3, width))
        self.use_state = use_state
        if use_state:
            self.state_proj = nn.Linear(shapes.state_dim, width)
        if use_world_model_features:
            self.feature_proj = nn.Sequential(nn.LayerNorm(shapes.wm_feature_dim), nn.Linear(shapes.wm_feature_dim, width))
        self.mix = nn.TransformerEncoderLayer(width, heads, 2 * width, 0.0, batch_first=True, norm_first=True)
        self.steps_per_frame = shapes.wm_frame_stride
        self.frames_read = -(-shapes.action_horizon // self.steps_per_frame)
        self.decoder = MultiScaleConvDecoder(width, width, self.steps_per_frame * shapes.action_dim)
        nn.init.normal_(self.frame_embed, std=0.02)

    def _frames(self, ctx: ExpertContext, training: bool) -> torch.Tensor:
        if training and self.train_on == "real":
            if ctx.future_frames is None:
                raise ValueError("the reactive expert trains on real future frames, but the batch has none")
            return ctx.future_frames
        if ctx.world_model is None or ctx.world_model.frames is None:
            raise ValueError("the reactive expert needs the world model's predicted frames")
        # predicted frames are floats in [-1, 1]; the encoder takes uint8
        return to_uint8(ctx.world_model.frames)

    def forward_chunk(self, ctx: ExpertContext, training: bool) -> torch.Tensor:
        h, k = self.shapes.action_horizon, self.frames_read  # frames whose actions fall in the chunk
        frames = self._frames(ctx, training)[:, :k]  # [B, k, 3, H, W]
        if frames.shape[1] < k:
            raise ValueError(f"{frames.shape[1]} predicted frames x stride {self.steps_per_frame} cover fewer than "
                             f"{h} actions")
        b = frames.shape[0]
        seq = torch.cat([ctx.image[:, None], frames], dim=1)  # [B, 1+K, 3, H, W]
        tokens = self.token_proj(self.encoder(seq.flatten(0, 1))).unflatten(0, (b, k + 1))  # [B, 1+K, N, W]
        prev, target = tokens[:, :-1], tokens[:, 1:]  # pairs (frame k-1, frame k)
        parts = [prev + self.frame_embed[0], target + self.frame_embed[1]]
        if self.use_features:
            if ctx.world_model is None or ctx.world_model.features is None:
                raise ValueError("the reactive expert with use_world_model_features=True needs the world model's features")
            pooled = self.feature_proj(ctx.world_model.features[:, :k].mean(dim=2))  # [B, k, W]
            parts.append(pooled[:, :, None] + self.frame_embed[2])
        if self.use_state:
            state = self.state_proj(ctx.state)[:, None, None].expand(-1, k, 1, -1)
            parts.append(state + self.frame_embed[3])
        x = self.mix(torch.cat(parts, dim=2).flatten(0, 1))  # [B*K, 2N(+1), W]
        n = tokens.shape[2]
        grid = x[:, n:2 * n].transpose(1, 2).reshape(b * k, -1, self.grid, self.grid)
        actions = self.decoder(grid).view(b, k * self.steps_per_frame, self.shapes.action_dim)
        return actions[:, :h]

    def compute_loss(self, ctx: ExpertContext, actions: torch.Tensor, action_mask: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pred = self.forward_chunk(ctx, training=True)
        loss = masked_mean(F.smooth_l1_loss(pred, actions, beta=self.beta, reduction="none"), action_mask)
        return loss, {"smooth_l1": loss.detach()}

    @torch.no_grad()
    def predict(self, ctx: ExpertContext) -> torch.Tensor:
        return self.forward_chunk(ctx, training=False)
