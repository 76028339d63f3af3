"""A training loader whose place in the epoch is part of the checkpoint.

Lightning resumes a fit mid-epoch exactly only if the train loader can say where it
was (``state_dict``) and start there again (``load_state_dict``); a plain shuffled
``DataLoader`` restarts the epoch with a new order, so a resumed run sees other
batches than the uninterrupted one. Here the order of epoch ``e`` is a permutation
seeded by ``(seed, e)``, and resuming skips the batches already consumed without
loading them.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSeededSampler(Sampler[int]):
    """Indices in a seeded random order per epoch, optionally starting part-way (once, after a resume)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch, self.start = size, seed, 0, 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at every epoch start
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        start, self.start = self.start, 0
        return iter(order[start:])

    def __len__(self) -> int:
        return self.size  # the whole epoch: Lightning counts a resumed epoch's batches from its restored progress


class ResumableLoader(DataLoader):
    """``DataLoader`` over an :class:`EpochSeededSampler` with ``state_dict``/``load_state_dict`` for Lightning."""

    def __init__(self, dataset: Dataset, batch_size: int = 1, seed: int = 0, sampler: Sampler | None = None,
                 **kwargs: Any) -> None:
        """``sampler``: only for Lightning, which rebuilds the loader with a distributed sampler under DDP
        (that sampler then decides the order, and a resume restarts the epoch)."""
        self.order = EpochSeededSampler(len(dataset), seed)  # type: ignore[arg-type]
        kwargs.pop("shuffle", None)
        kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
        # its own generator: creating an iterator then draws no number from the global RNG, which a resumed
        # run would otherwise draw at another moment than the uninterrupted one
        super().__init__(dataset, batch_size=batch_size, sampler=sampler or self.order, **kwargs)
        self.consumed = 0

    def __iter__(self) -> Iterator[Any]:
        skipped = self.consumed
        for batch in super().__iter__():
            skipped += 1
            self.consumed = skipped
            yield batch
        self.consumed = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.order.epoch, "batches": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if self.sampler is not self.order:
            return  # a distributed sampler: the epoch restarts
        self.order.epoch = int(state["epoch"])
        self.consumed = int(state["batches"])
        self.order.start = self.consumed * self.batch_size  # type: ignore[operator]
