"""A dataset folder holding the first few episodes of each task of another one.

For experiments that must see exactly some stored demonstrations (memorise and replay
them) or that only need a small dataset to time something. The generation metadata
is kept, so each episode's scene can still be rebuilt from its seed.
"""

from __future__ import annotations

from pathlib import Path

from harmowam.data.format import META_FILE, EpisodeStore, EpisodeWriter


def write_subset(source: str | Path, out: str | Path, per_task: int) -> Path:
    """Copy the first ``per_task`` episodes of each task from ``source`` to ``out`` (kept if already written)."""
    out = Path(out)
    if (out / META_FILE).is_file():
        return out
    if per_task < 1:
        raise ValueError(f"per_task must be >= 1, got {per_task}")
    store = EpisodeStore(source)
    writer = EpisodeWriter(out, store.image_size, dict(store.meta.get("generation", {})), overwrite=True,
                           shapes={k: tuple(a.shape[1:]) for k, a in store.arrays.items() if k != "image"})
    taken: dict[str, int] = {}
    for ep in store.episodes:
        if taken.get(ep.task, 0) < per_task:
            writer.add_episode(store.episode(ep.index), ep.task, ep.instruction, ep.seed)
            taken[ep.task] = taken.get(ep.task, 0) + 1
    return writer.close()
