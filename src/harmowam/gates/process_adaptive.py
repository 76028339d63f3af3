"""Process-adaptive gating: a small MLP on image tokens (and optionally the state) predicts the phase.

At inference ``s_t > threshold`` routes to the predictive expert (interaction),
otherwise to the reactive one (transit): a hard switch. Trained with binary
cross-entropy against automatic phase labels. The keyframe-averaging ablation uses
the same phase classifier but averages both experts in interaction phases.

``use_state`` adds the normalised proprioception (hand position, gripper) to the
MLP's input. Off in the class, as in the paper; the shipped stage-2 config turns it on:
in-domain it changed nothing measurable, under unseen object positions it lifted
HarmoWAM from 0.13 and 0.17 to 0.30 and 0.27 (two training seeds, 30 episodes each;
docs/stage2_recipe.md, "The gate reads the state").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harmowam.experts.base import PolicyShapes
from harmowam.gates.base import Gate


class ProcessAdaptiveGate(Gate):
    learned = True

    def __init__(self, shapes: PolicyShapes, hidden: int = 128, threshold: float = 0.5, detach_tokens: bool = False,
                 use_state: bool = False) -> None:
        super().__init__(shapes)
        self.threshold, self.detach_tokens, self.use_state = threshold, detach_tokens, use_state
        d = 2 * shapes.image_token_dim + (shapes.state_dim if use_state else 0)
        # mean and max pooling of the tokens keep both global layout and the most salient patch
        self.mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def logits(self, image_tokens: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        x = image_tokens.detach() if self.detach_tokens else image_tokens
        parts = [x.mean(1), x.amax(1)]
        if self.use_state:
            if state is None:
                raise ValueError("the process_adaptive gate has use_state=True but was given no state")
            parts.append(state.to(x.dtype))
        return self.mlp(torch.cat(parts, dim=-1)).squeeze(-1)

    def interaction_probability(self, image_tokens: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.logits(image_tokens, state))

    def weights(self, image_tokens: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return (self.interaction_probability(image_tokens, state) > self.threshold).float()

    def loss(self, image_tokens: torch.Tensor, labels: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.logits(image_tokens, state), labels.float())


class KeyframeAverageGate(ProcessAdaptiveGate):
    """Average both experts in interaction phases, reactive elsewhere (an ablation)."""

    def weights(self, image_tokens: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return 0.5 * (self.interaction_probability(image_tokens, state) > self.threshold).float()
