"""The contract of a gate: a weight on the predictive expert per sample.

``weights(image_tokens, state)`` returns ``w`` in [0, 1], shape ``[B]``: the action is
``w * predictive + (1 - w) * reactive``. ``state`` is the normalised proprioception
``[B, S]``; a gate may ignore it. A hard gate returns exactly 0 or 1 and
the core module then runs only the chosen expert; a soft gate (averaging) makes it
run both. A learned gate also returns a loss against the phase labels
(1 = interaction, 0 = transit).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from harmowam.experts.base import PolicyShapes

PREDICTIVE = "predictive"
REACTIVE = "reactive"


class Gate(nn.Module, ABC):
    #: experts this gate can route to; the core module checks the config provides them
    roles: tuple[str, ...] = (PREDICTIVE, REACTIVE)
    #: True when the gate learns from phase labels
    learned: bool = False

    def __init__(self, shapes: PolicyShapes) -> None:
        super().__init__()
        self.shapes = shapes

    @abstractmethod
    def weights(self, image_tokens: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Weight ``[B]`` on the predictive expert's action."""

    def interaction_probability(self, image_tokens: torch.Tensor, state: torch.Tensor | None = None
                                ) -> torch.Tensor | None:
        """The gate's estimate of P(interaction) ``[B]``, for gates that have one."""
        return None

    def loss(self, image_tokens: torch.Tensor, labels: torch.Tensor, state: torch.Tensor | None = None
             ) -> torch.Tensor | None:
        """Training loss against phase labels ``[B]``; None for gates with nothing to learn."""
        return None
