"""Episode storage, training windows and the LightningDataModule.

``EpisodeDataModule`` is imported on first use: ``import lightning`` takes about 10 s on 2 CPU
cores (torchmetrics pulls in torchvision and torch._dynamo), and the commands and worker
processes that only read or write episodes (``harmowam data ...``, generation workers) need none of it.
"""

from typing import Any

from harmowam.data.format import DatasetError, EpisodeStore, EpisodeWriter
from harmowam.data.normalization import Normalizer
from harmowam.data.windows import WindowDataset, WindowSpec

__all__ = ["EpisodeDataModule", "DatasetError", "EpisodeStore", "EpisodeWriter", "Normalizer", "WindowDataset", "WindowSpec"]


def __getattr__(name: str) -> Any:
    if name == "EpisodeDataModule":
        from harmowam.data.datamodule import EpisodeDataModule

        return EpisodeDataModule
    raise AttributeError(f"module 'harmowam.data' has no attribute '{name}'")
