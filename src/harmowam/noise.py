"""Gaussian noise from one generator, or from one generator per sample.

With one generator per sample, a sample's draw does not depend on which other samples
share its batch: a batched evaluation rolls out each episode exactly as it would alone
(up to floating-point summation order), so a failure seen in a table can be replayed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None


def randn(shape: Sequence[int], generator: Generators = None, device: torch.device | str | None = None,
          dtype: torch.dtype | None = None) -> torch.Tensor:
    """``torch.randn(shape)``; with a list of generators, sample ``i`` of dimension 0 draws from ``generator[i]``."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}: give one per sample")
    return torch.stack([torch.randn(tuple(shape[1:]), generator=g, device=device, dtype=dtype) for g in generator])
