"""Plain behaviour cloning: pooled image tokens, instruction and state -> an action chunk by MLP."""

from __future__ import annotations

import torch
from torch import nn

from harmowam.experts import ActionExpert, ExpertContext, PolicyShapes, masked_mean


class MLPExpert(ActionExpert):
    needs = frozenset()  # no world-model outputs: a baseline without imagination

    def __init__(self, shapes: PolicyShapes, hidden: int = 256, depth: int = 2) -> None:
        super().__init__(shapes)
        d_in = shapes.image_token_dim + shapes.instruction_dim + shapes.state_dim
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.GELU()]
        layers.append(nn.Linear(hidden, shapes.action_horizon * shapes.action_dim))
        self.net = nn.Sequential(nn.LayerNorm(d_in), *layers)

    def forward(self, ctx: ExpertContext) -> torch.Tensor:
        x = torch.cat([ctx.image_tokens.mean(1), ctx.instruction_tokens.mean(1), ctx.state], dim=-1)
        return self.net(x).view(-1, self.shapes.action_horizon, self.shapes.action_dim)

    def compute_loss(self, ctx: ExpertContext, actions: torch.Tensor, action_mask: torch.Tensor):
        loss = masked_mean((self(ctx) - actions).pow(2), action_mask)
        return loss, {"mse": loss.detach()}

    @torch.no_grad()
    def predict(self, ctx: ExpertContext) -> torch.Tensor:
        return self(ctx)
