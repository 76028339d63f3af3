"""The LightningDataModule over stored episodes: windows, normalisation, a split by episode."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from harmowam.data.format import EpisodeStore
from harmowam.data.normalization import Normalizer
from harmowam.data.resumable import ResumableLoader
from harmowam.data.windows import WindowDataset, WindowSpec, episode_labels
from harmowam.registry import get_label_strategy


class EpisodeDataModule(L.LightningDataModule):
    """Windows over one or more dataset folders.

    ``data_dirs`` lists folders made by ``harmowam data generate``; the world model
    trains on demonstrations and broad video together, the experts on demonstrations
    only. Normalisation statistics come from the first folder. ``val_fraction`` of
    each folder's episodes (chosen with ``seed``) form the validation split.
    ``label_strategy`` (a registered name, or ``{"name": ..., **options}``) adds a
    ``phase_label`` per sample for the gate.
    """

    def __init__(
        self,
        data_dirs: list[str] | str = "data/demos",
        num_history: int = 1,
        num_future_frames: int = 4,
        future_stride: int = 4,
        action_horizon: int = 12,
        pad_end: bool = True,
        val_fraction: float = 0.1,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        tasks: list[str] | None = None,
        normalization: dict[str, str] | None = None,
        label_strategy: dict[str, Any] | str | None = None,
    ) -> None:
        super().__init__()
        self.data_dirs = [data_dirs] if isinstance(data_dirs, str) else list(data_dirs)
        self.spec = WindowSpec(num_history, num_future_frames, future_stride, action_horizon, pad_end)
        if not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.val_fraction, self.batch_size, self.num_workers, self.seed = val_fraction, batch_size, num_workers, seed
        self.tasks = tasks
        self.normalization = normalization or {"state": "mean_std", "action": "min_max"}
        self.label_strategy = label_strategy
        self.stores: list[EpisodeStore] = []
        self.normalizer: Normalizer | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.stores:
            return
        self.stores = [EpisodeStore(Path(d)) for d in self.data_dirs]
        self.normalizer = Normalizer(self.stores[0].stats, self.normalization)
        labels = None
        if self.label_strategy is not None:
            spec = {"name": self.label_strategy} if isinstance(self.label_strategy, str) else dict(self.label_strategy)
            fn = get_label_strategy(spec.pop("name"))
            labels = [episode_labels(s, fn, **spec) for s in self.stores]
        train_eps, val_eps = [], []
        rng = np.random.default_rng(self.seed)
        for store in self.stores:
            eps = [e.index for e in store.episodes if self.tasks is None or e.task in self.tasks]
            if not eps:
                raise ValueError(f"{store.path}: no episodes of tasks {self.tasks}; it holds {store.tasks}")
            eps = list(rng.permutation(eps))
            n_val = int(round(len(eps) * self.val_fraction)) if len(eps) > 1 else 0
            val_eps.append(sorted(int(e) for e in eps[:n_val]))
            train_eps.append(sorted(int(e) for e in eps[n_val:]))
        self.train_set = WindowDataset(self.stores, train_eps, self.spec, self.normalizer, labels)
        self.val_set = WindowDataset(self.stores, val_eps, self.spec, self.normalizer, labels)

    def _loader(self, dataset: WindowDataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          drop_last=shuffle and len(dataset) > self.batch_size,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        """Shuffled per epoch by the run's seed (``seed_everything``) and ``seed``; resumable mid-epoch."""
        seed = (torch.initial_seed() + self.seed) % 2**62
        return ResumableLoader(self.train_set, self.batch_size, seed, num_workers=self.num_workers,
                               drop_last=len(self.train_set) > self.batch_size,
                               persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        """Validation windows in a fixed shuffled order: any ``limit_val_batches`` prefix covers every task,
        and is the same subset at every validation."""
        order = torch.randperm(len(self.val_set), generator=torch.Generator().manual_seed(self.seed))
        return self._loader(Subset(self.val_set, order.tolist()), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The held-out episodes (there is no separate test split: closed-loop evaluation is the test)."""
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()

    # -- for modules that cache per-frame work (the world model's latents) -----------------
    @property
    def num_frames(self) -> int:
        return sum(s.num_frames for s in self.stores)

    def iter_frames(self, batch_size: int = 256) -> Iterator[tuple[int, torch.Tensor]]:
        """All frames of all folders in global index order, as ``(first_index, uint8 [B, 3, H, W])``."""
        offset = 0
        for store in self.stores:
            images = store.arrays["image"]
            for i in range(0, store.num_frames, batch_size):
                chunk = torch.from_numpy(np.array(images[i:i + batch_size])).permute(0, 3, 1, 2)
                yield offset + i, chunk
            offset += store.num_frames
