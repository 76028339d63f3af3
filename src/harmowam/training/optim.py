"""The optimiser recipe: no weight decay on norms, biases and embeddings; warm-up then cosine decay."""

from __future__ import annotations

import math
from typing import Callable, Iterable

from torch import nn

#: parameter-name fragments of embeddings (learned positions, type and token tables), kept out of weight decay
EMBEDDING_NAMES = ("embed", "pos", "cls_token", "reg_token", "mask_token")


def decay_and_no_decay(named: Iterable[tuple[str, nn.Parameter]], weight_decay: float) -> list[dict]:
    """Two AdamW parameter groups: matrices decay; norms, biases (ndim < 2) and embeddings do not."""
    decay, no_decay = [], []
    for name, p in named:
        if not p.requires_grad:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if p.ndim < 2 or any(k in leaf for k in EMBEDDING_NAMES) or ".embedding" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(warmup_steps: int, total_steps: int | None, final_fraction: float = 0.05
                  ) -> Callable[[int], float]:
    """LR multiplier: linear warm-up, then cosine from 1 to ``final_fraction`` at ``total_steps`` (flat if None)."""
    warm = max(warmup_steps, 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if not total_steps or total_steps <= warm:
            return 1.0
        progress = min(1.0, (step - warm) / (total_steps - warm))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor
