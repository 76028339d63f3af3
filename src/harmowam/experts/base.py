"""The contract between the core module and an action expert.

An expert sees one :class:`ExpertContext` and returns a loss in training and an
action chunk at inference. It says which world-model outputs it needs through
``needs`` so that the core module computes only those (the predictive path never
decodes frames).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch
from torch import nn

from harmowam.world_models.base import WorldModelOutput

FEATURES = "features"
FRAMES = "frames"


@dataclass(frozen=True)
class PolicyShapes:
    """Sizes an expert is built for; the core module passes them to every expert and gate."""

    action_dim: int = 4
    action_horizon: int = 12
    state_dim: int = 4
    image_size: int = 64
    instruction_dim: int = 64
    image_token_dim: int = 192  # width of the shared image encoder's tokens
    wm_feature_dim: int = 128  # width D of the world model's implicit features
    wm_tokens_per_frame: int = 64
    wm_num_frames: int = 4  # predicted frames K
    wm_frame_stride: int = 4  # env steps between predicted frames


@dataclass
class ExpertContext:
    """Everything an expert may read at one control step (a batch of B samples).

    image:        uint8 ``[B, 3, H, W]`` current frame
    state:        normalised proprioception ``[B, S]``
    instructions: the instruction strings
    instruction_tokens: ``[B, L, instruction_dim]``
    image_tokens: tokens of the shared encoder ``[B, N, image_token_dim]`` (the gate reads these too)
    world_model:  the outputs asked for in ``needs``; None for an expert that needs nothing
    future_frames: frames the reactive expert trains on (real or predicted) ``[B, K, 3, H, W]`` uint8
    generators:   at inference, one noise generator per sample (None: the global one); a sampling expert draws
                  its noise from them (:func:`harmowam.noise.randn`), so a sample's actions do not depend on its batch
    """

    image: torch.Tensor
    state: torch.Tensor
    instructions: list[str]
    instruction_tokens: torch.Tensor
    image_tokens: torch.Tensor
    world_model: WorldModelOutput | None = None
    future_frames: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)
    generators: list[torch.Generator] | None = None

    def select(self, index: torch.Tensor) -> "ExpertContext":
        """The sub-batch ``index`` (for routing only some samples to an expert)."""
        wm = self.world_model
        sub_wm = None
        if wm is not None:
            sub_wm = WorldModelOutput(*(None if t is None else t[index] for t in (wm.frames, wm.features, wm.latents)))
        pick = index.tolist()
        return ExpertContext(
            self.image[index], self.state[index], [self.instructions[i] for i in pick],
            self.instruction_tokens[index], self.image_tokens[index], sub_wm,
            None if self.future_frames is None else self.future_frames[index],
            {k: v[index] for k, v in self.extras.items()},
            None if self.generators is None else [self.generators[i] for i in pick],
        )


class ActionExpert(nn.Module, ABC):
    """An action generator: ``compute_loss`` in training, ``predict`` at inference."""

    #: world-model outputs this expert reads: a subset of {"features", "frames"}
    needs: frozenset[str] = frozenset()
    #: True when training reads the batch's real future frames instead of predicted ones
    trains_on_real_frames: bool = False
    #: leading predicted frames read (None: all): the world model decodes no more than its experts read
    frames_read: int | None = None

    def __init__(self, shapes: PolicyShapes) -> None:
        super().__init__()
        self.shapes = shapes

    @abstractmethod
    def compute_loss(self, ctx: ExpertContext, actions: torch.Tensor, action_mask: torch.Tensor
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss on normalised actions ``[B, H, A]`` (``action_mask`` ``[B, H]`` marks real steps) and logs."""

    @abstractmethod
    def predict(self, ctx: ExpertContext) -> torch.Tensor:
        """A normalised action chunk ``[B, H, A]``."""


def masked_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``err [B, H, ...]`` over the steps where ``mask [B, H]`` is True."""
    while mask.dim() < err.dim():
        mask = mask.unsqueeze(-1)
    m = mask.to(err.dtype).expand_as(err)
    return (err * m).sum() / m.sum().clamp_min(1.0)
