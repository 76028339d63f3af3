"""Plain behaviour cloning: the baseline every table carries, so it shows what the world model adds.

Mean- and max-pooled tokens of the shared image encoder, the instruction and the
state go through an MLP to a whole action chunk, regressed by MSE. It reads no
world-model output. The example plugin's ``mlp`` expert is the same idea written
as a third-party package; this one is built in so the pipeline needs no plugin.
"""

from __future__ import annotations

import torch
from torch import nn

from harmowam.experts.base import ActionExpert, ExpertContext, PolicyShapes, masked_mean


class BehaviorCloningExpert(ActionExpert):
    needs = frozenset()

    def __init__(self, shapes: PolicyShapes, hidden: int = 256, depth: int = 2, dropout: float = 0.0) -> None:
        super().__init__(shapes)
        d_in = 2 * shapes.image_token_dim + shapes.instruction_dim + shapes.state_dim
        layers: list[nn.Module] = [nn.LayerNorm(d_in)]
        for i in range(depth):
            layers += [nn.Linear(d_in if i == 0 else hidden, hidden), nn.GELU(), nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden, shapes.action_horizon * shapes.action_dim))
        self.head = nn.Sequential(*layers)

    def chunk(self, ctx: ExpertContext) -> torch.Tensor:
        tokens = ctx.image_tokens
        x = torch.cat([tokens.mean(1), tokens.amax(1), ctx.instruction_tokens.mean(1), ctx.state], dim=-1)
        return self.head(x).view(-1, self.shapes.action_horizon, self.shapes.action_dim)

    def compute_loss(self, ctx: ExpertContext, actions: torch.Tensor, action_mask: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = masked_mean((self.chunk(ctx) - actions).pow(2), action_mask)
        return loss, {"mse": loss.detach()}

    @torch.no_grad()
    def predict(self, ctx: ExpertContext) -> torch.Tensor:
        return self.chunk(ctx)
