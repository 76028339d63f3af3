"""The contract of an instruction encoder.

A pretrained text encoder (T5, CLIP) fits the same contract: a package wraps it,
loads its weights from a local folder, and registers it through
``harmowam_register_instruction_encoders``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


class InstructionEncoder(nn.Module, ABC):
    #: width of each token, read by the world model and the experts
    dim: int
    #: number of tokens per instruction
    num_tokens: int

    @abstractmethod
    def forward(self, instructions: list[str]) -> torch.Tensor:
        """Embed a batch of instructions as ``[B, num_tokens, dim]``."""

    def get_config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this encoder (saved beside its weights)."""
        raise NotImplementedError
