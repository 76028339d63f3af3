"""Training windows over stored episodes: what one sample holds and how episode ends are handled.

A window anchored at step ``t`` of an episode holds the current observation (and
``num_history - 1`` earlier ones), ``num_future_frames`` future frames at
``t + stride, t + 2 stride, ...``, and the action chunk ``a_t .. a_{t+H-1}``.

Episode ends. With ``pad_end=True`` (default) every step is an anchor; a future
frame or action beyond the last step repeats the last one and is marked False in
``future_mask`` / ``action_mask``, and losses skip it. With ``pad_end=False`` only
anchors whose whole window lies inside the episode are kept. History before the
first step repeats the first frame and is marked in ``history_mask``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from harmowam.data.format import DatasetError, EpisodeStore
from harmowam.data.normalization import Normalizer


@dataclass(frozen=True)
class WindowSpec:
    num_history: int = 1
    num_future_frames: int = 4
    future_stride: int = 4
    action_horizon: int = 12
    pad_end: bool = True

    @property
    def min_episode_length(self) -> int:
        """The shortest episode a window fits in, padded or not."""
        return max(self.num_history, self.num_future_frames * self.future_stride + 1, self.action_horizon)

    def anchors(self, length: int) -> range:
        if self.pad_end:
            return range(length)
        last = min(length - self.num_future_frames * self.future_stride, length - self.action_horizon + 1)
        return range(max(last, 0))


class WindowDataset(Dataset):
    """Windows over one or more :class:`EpisodeStore` s, for the given episodes of each."""

    def __init__(self, stores: list[EpisodeStore], episodes: list[list[int]], spec: WindowSpec,
                 normalizer: Normalizer | None = None, labels: list[np.ndarray] | None = None) -> None:
        self.stores, self.spec, self.normalizer, self.labels = stores, spec, normalizer, labels
        self.offsets = np.cumsum([0] + [s.num_frames for s in stores])[:-1]  # global frame index per store
        index = []
        for si, (store, eps) in enumerate(zip(stores, episodes)):
            for e in eps:
                ep = store.episodes[e]
                if ep.length < spec.min_episode_length:
                    raise DatasetError(
                        f"{store.path / 'meta.json'}: episode {e} (task '{ep.task}') has {ep.length} steps, shorter "
                        f"than the window ({spec.min_episode_length} steps: {spec.num_future_frames} future frames at "
                        f"stride {spec.future_stride}, action horizon {spec.action_horizon})"
                    )
                index.extend((si, e, t) for t in spec.anchors(ep.length))
        self.index = np.asarray(index, dtype=np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any]:
        si, e, t = (int(v) for v in self.index[i])
        store, sp = self.stores[si], self.spec
        ep = store.episodes[e]
        last = ep.length - 1
        hist = np.arange(t - sp.num_history + 1, t + 1)
        fut = t + sp.future_stride * np.arange(1, sp.num_future_frames + 1)
        act = t + np.arange(sp.action_horizon)
        arrays = store.arrays
        state = torch.from_numpy(np.array(arrays["state"][ep.start + np.clip(hist, 0, last)]))
        action = torch.from_numpy(np.array(arrays["action"][ep.start + np.clip(act, 0, last)]))
        if self.normalizer is not None:
            state = self.normalizer.normalize("state", state)
            action = self.normalizer.normalize("action", action)
        sample = {
            "image": torch.from_numpy(np.array(arrays["image"][ep.start + np.clip(hist, 0, last)])).permute(0, 3, 1, 2),
            "history_mask": torch.from_numpy(hist >= 0),
            "future_image": torch.from_numpy(np.array(arrays["image"][ep.start + np.clip(fut, 0, last)])).permute(0, 3, 1, 2),
            "future_mask": torch.from_numpy(fut <= last),
            "state": state,
            "action": action,
            "action_mask": torch.from_numpy(act <= last),
            "frame_index": torch.tensor(self.offsets[si] + ep.start + t),
            "future_index": torch.from_numpy(self.offsets[si] + ep.start + np.clip(fut, 0, last)),
            "instruction": ep.instruction,
            "task": ep.task,
            "step": torch.tensor(t),
        }
        if "env_state" in arrays:  # simulator data only
            sample["env_state"] = torch.from_numpy(np.array(arrays["env_state"][ep.start + t]))
        if self.labels is not None:
            sample["phase_label"] = torch.tensor(float(self.labels[si][ep.start + t]))
        return sample


def episode_labels(store: EpisodeStore, strategy: Callable[..., np.ndarray], **options: Any) -> np.ndarray:
    """Apply a phase-label strategy to every episode of a store: a bool per frame."""
    out = np.zeros(store.num_frames, dtype=bool)
    for ep in store.episodes:
        labels = np.asarray(strategy(store.episode(ep.index), task=ep.task, **options), dtype=bool)
        if labels.shape != (ep.length,):
            raise ValueError(f"label strategy returned shape {labels.shape} for episode {ep.index} of {store.path}, "
                             f"expected ({ep.length},)")
        out[ep.start:ep.stop] = labels
    return out
