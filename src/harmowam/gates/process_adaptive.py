"""Process-adaptive gating: a small MLP on image tokens predicts the interaction phase.

At inference ``s_t > threshold`` routes to the predictive expert (interaction),
otherwise to the reactive one (transit): a hard switch. Trained with binary
cross-entropy against automatic phase labels. The keyframe-averaging ablation uses
the same phase classifier but averages both experts in interaction phases.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harmowam.experts.base import PolicyShapes
from harmowam.gates.base import Gate


class ProcessAdaptiveGate(Gate):
    learned = True

    def __init__(self, shapes: PolicyShapes, hidden: int = 128, threshold: float = 0.5, detach_tokens: bool = False) -> None:
        super().__init__(shapes)
        self.threshold, self.detach_tokens = threshold, detach_tokens
        d = shapes.image_token_dim
        # mean and max pooling of the tokens keep both global layout and the most salient patch
        self.mlp = nn.Sequential(nn.LayerNorm(2 * d), nn.Linear(2 * d, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def logits(self, image_tokens: torch.Tensor) -> torch.Tensor:
        x = image_tokens.detach() if self.detach_tokens else image_tokens
        return self.mlp(torch.cat([x.mean(1), x.amax(1)], dim=-1)).squeeze(-1)

    def interaction_probability(self, image_tokens: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(image_tokens))

    def weights(self, image_tokens: torch.Tensor) -> torch.Tensor:
        return (self.interaction_probability(image_tokens) > self.threshold).float()

    def loss(self, image_tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.logits(image_tokens), labels.float())


class KeyframeAverageGate(ProcessAdaptiveGate):
    """Average both experts in interaction phases, reactive elsewhere (an ablation)."""

    def weights(self, image_tokens: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.interaction_probability(image_tokens) > self.threshold).float()
