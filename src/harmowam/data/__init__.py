"""Episode storage, training windows and the LightningDataModule."""

from harmowam.data.datamodule import EpisodeDataModule
from harmowam.data.format import DatasetError, EpisodeStore, EpisodeWriter
from harmowam.data.normalization import Normalizer
from harmowam.data.windows import WindowDataset, WindowSpec

__all__ = ["EpisodeDataModule", "DatasetError", "EpisodeStore", "EpisodeWriter", "Normalizer", "WindowDataset", "WindowSpec"]
