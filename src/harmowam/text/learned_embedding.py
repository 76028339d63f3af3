"""One learned embedding per instruction string: the default when no text model is at hand."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from harmowam.text.instruction_encoder import InstructionEncoder


class LearnedInstructionEmbedding(InstructionEncoder):
    """A lookup table over a fixed vocabulary of instructions (by default the six tasks')."""

    def __init__(self, vocabulary: Sequence[str] | None = None, dim: int = 64, num_tokens: int = 2) -> None:
        super().__init__()
        if vocabulary is None:
            from harmowam.sim.tasks import instructions

            vocabulary = instructions()
        self.vocabulary = list(vocabulary)
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise ValueError("the instruction vocabulary has duplicates")
        self._index = {s: i for i, s in enumerate(self.vocabulary)}
        self.dim, self.num_tokens = dim, num_tokens
        self.embedding = nn.Embedding(len(self.vocabulary), dim * num_tokens)
        nn.init.normal_(self.embedding.weight, std=0.02)

    def forward(self, instructions: list[str]) -> torch.Tensor:
        try:
            ids = [self._index[s] for s in instructions]
        except KeyError as exc:
            raise KeyError(
                f"instruction {exc.args[0]!r} is not in the learned vocabulary: {self.vocabulary}. "
                "Add it to the encoder's 'vocabulary' or register a text encoder."
            ) from None
        idx = torch.tensor(ids, device=self.embedding.weight.device)
        return self.embedding(idx).view(len(ids), self.num_tokens, self.dim)

    def get_config(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary, "dim": self.dim, "num_tokens": self.num_tokens}
