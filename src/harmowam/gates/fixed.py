"""Fixed gates: one expert always (the single-paradigm baselines), or the plain average."""

from __future__ import annotations

import torch

from harmowam.experts.base import PolicyShapes
from harmowam.gates.base import PREDICTIVE, REACTIVE, Gate


class ConstantGate(Gate):
    """The same weight on the predictive expert for every sample."""

    def __init__(self, shapes: PolicyShapes, weight: float = 0.5) -> None:
        super().__init__(shapes)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"gate weight must be in [0, 1], got {weight}")
        self.weight = float(weight)
        self.roles = tuple(r for r, used in ((PREDICTIVE, weight > 0), (REACTIVE, weight < 1)) if used)

    def weights(self, image_tokens: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        return torch.full((image_tokens.shape[0],), self.weight, device=image_tokens.device)


def always_predictive(shapes: PolicyShapes) -> ConstantGate:
    """Joint Modeling: the predictive expert acts at every step."""
    return ConstantGate(shapes, 1.0)


def always_reactive(shapes: PolicyShapes) -> ConstantGate:
    """Imagine-then-Execute: the reactive expert acts at every step."""
    return ConstantGate(shapes, 0.0)


def average(shapes: PolicyShapes) -> ConstantGate:
    """The averaging ablation: the mean of both experts' actions."""
    return ConstantGate(shapes, 0.5)
