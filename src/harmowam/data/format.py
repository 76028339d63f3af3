"""The on-disk episode format: one folder, one raw array file per key, one ``meta.json``.

Layout of a dataset folder::

    meta.json        schema, episode table, normalisation statistics, generation metadata
    image.bin        uint8   [N, H, W, 3]   RGB frames, upright
    state.bin        float32 [N, S]         proprioception (Meta-World: hand xyz, gripper opening; S = 4)
    action.bin       float32 [N, A]         the commanded action (Meta-World: xyz displacement and
                                            gripper effort in [-1, 1]; A = 4)
    env_state.bin    float32 [N, E]         optional: the simulator's full observation (Meta-World's 39
                                            numbers: objects, goal), for phase labels and metrics

Image size and the widths S, A and E are the dataset's own, declared in ``meta.json``
(an imported robot dataset has other sizes than Meta-World's).

``N`` counts frames over all episodes, which are stored back to back; the episode
table in ``meta.json`` gives each one's ``start``, ``length``, ``task``,
``instruction`` and ``seed``. Frame ``t`` of an episode holds the observation before
action ``t`` is taken.

Why raw arrays and ``np.memmap``: random access to any frame is a page-cache read
with no decompression, which matters on two cores where a compressed store (zarr,
HDF5 with gzip) spends the data loader's time decoding chunks. 20k frames at 64x64
are 250 MB, small enough for the page cache. Files are appended episode by episode
while generating, so nothing written is lost to a crash in a later episode.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmowam.data.meta_schema import validate_meta
from harmowam.files import write_text_atomic

FORMAT_NAME = "harmowam-episodes"
FORMAT_VERSION = 1
META_FILE = "meta.json"
PROGRESS_FILE = "progress.jsonl"  # episodes finished by an unfinished writer

#: key -> (dtype, number of per-frame dimensions); the sizes are each dataset's own
SCHEMA: dict[str, tuple[str, int]] = {
    "image": ("uint8", 3),  # (H, W, 3)
    "state": ("float32", 1),
    "action": ("float32", 1),
    "env_state": ("float32", 1),
}
REQUIRED_KEYS = ("image", "state", "action")
FLOAT_KEYS = tuple(k for k, (dt, _) in SCHEMA.items() if dt.startswith("float"))
#: Meta-World's per-frame shapes (the image's side is the generator's choice)
METAWORLD_SHAPES: dict[str, tuple[int, ...]] = {"state": (4,), "action": (4,), "env_state": (39,)}


class DatasetError(ValueError):
    """A dataset folder that does not hold what the format promises."""


@dataclass(frozen=True)
class EpisodeInfo:
    index: int
    task: str
    instruction: str
    start: int
    length: int
    seed: int

    @property
    def stop(self) -> int:
        return self.start + self.length


class EpisodeWriter:
    """Appends episodes to a dataset folder; :meth:`close` writes statistics and ``meta.json``.

    Each finished episode is recorded in ``progress.jsonl`` after its arrays are flushed,
    so a folder left by a killed writer holds every finished episode. Opening such a
    folder with ``resume=True`` keeps them (a torn last episode, written but not
    recorded, is cut off) and appends after them, provided ``generation`` is the same.
    """

    def __init__(self, path: str | Path, image_size: int | tuple[int, int], generation: dict[str, Any] | None = None,
                 overwrite: bool = False, resume: bool = False, same_run: Any = None,
                 shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        """``image_size``: a side or ``(height, width)``; ``shapes``: per-frame shapes of ``state``, ``action``
        and, optionally, ``env_state`` (default Meta-World's; a key left out is not stored);
        ``same_run(recorded_generation) -> bool`` decides whether a partial folder belongs to this run
        (default: equal generation metadata)."""
        self.path = Path(path)
        if (self.path / META_FILE).exists() and not overwrite:
            raise FileExistsError(f"{self.path / META_FILE} exists; pass overwrite=True (--overwrite) to replace it")
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        shapes = dict(METAWORLD_SHAPES if shapes is None else shapes)
        unknown = set(shapes) - set(SCHEMA) | {k for k in REQUIRED_KEYS if k != "image" and k not in shapes}
        if "image" in shapes:
            raise DatasetError("shapes: the image's shape comes from image_size, not from shapes['image']")
        if unknown:
            raise DatasetError(f"shapes must give {', '.join(k for k in SCHEMA if k != 'image')} "
                               f"(env_state optional); got {sorted(shapes)}")
        self.path.mkdir(parents=True, exist_ok=True)
        self.shapes = {"image": (h, w, 3), **{k: tuple(int(n) for n in v) for k, v in shapes.items()}}
        self.keys = [k for k in SCHEMA if k in self.shapes]
        self.episodes: list[dict[str, Any]] = []
        self.num_frames = 0
        self.generation = generation or {}
        # running sums for statistics of float keys (float64 for accuracy)
        self.float_keys = [k for k in FLOAT_KEYS if k in self.shapes]
        self._sum = {k: np.zeros(self.shapes[k], np.float64) for k in self.float_keys}
        self._sumsq = {k: np.zeros(self.shapes[k], np.float64) for k in self.float_keys}
        self._min = {k: np.full(self.shapes[k], np.inf) for k in self.float_keys}
        self._max = {k: np.full(self.shapes[k], -np.inf) for k in self.float_keys}
        progress = self.path / PROGRESS_FILE
        recorded = _read_progress(progress) if resume and not overwrite else None
        if recorded is not None:
            same = same_run or (lambda g: g == self.generation)
            if not same(recorded[0]):
                raise FileExistsError(f"{progress}: '{self.path}' holds an unfinished generation with other settings; "
                                      "pass overwrite=True (--overwrite) to start it again")
            self._reopen(recorded[1])
        else:
            (self.path / META_FILE).unlink(missing_ok=True)
            for k in self.keys:
                open(self.path / f"{k}.bin", "wb").close()
            write_text_atomic(progress, json.dumps({"generation": self.generation}) + "\n")
        self.files = {k: open(self.path / f"{k}.bin", "ab") for k in self.keys}
        self._progress = open(progress, "a")

    def _reopen(self, episodes: list[dict[str, Any]]) -> None:
        """Keep the recorded episodes: cut every array file to their frames, recompute the statistics."""
        frames = sum(e["length"] for e in episodes)
        for key in self.keys:
            dtype = SCHEMA[key][0]
            file = self.path / f"{key}.bin"
            per_frame = math.prod(self.shapes[key]) * np.dtype(dtype).itemsize
            if not file.is_file() or file.stat().st_size < frames * per_frame:
                raise DatasetError(f"{file}: shorter than the {len(episodes)} episodes recorded in "
                                   f"{self.path / PROGRESS_FILE}; pass overwrite=True (--overwrite) to start again")
            with open(file, "r+b") as f:
                f.truncate(frames * per_frame)  # drops a torn episode written after the last record
            if key in self.float_keys and frames:
                self._accumulate(key, np.fromfile(file, dtype=dtype).reshape(frames, *self.shapes[key]))
        self.episodes = list(episodes)
        self.num_frames = frames

    def _accumulate(self, key: str, value: np.ndarray) -> None:
        v64 = value.astype(np.float64)
        self._sum[key] += v64.sum(0)
        self._sumsq[key] += (v64**2).sum(0)
        self._min[key] = np.minimum(self._min[key], v64.min(0))
        self._max[key] = np.maximum(self._max[key], v64.max(0))

    def add_episode(self, arrays: dict[str, np.ndarray], task: str, instruction: str, seed: int) -> None:
        length = len(arrays["action"])
        values = {}
        for key in self.keys:
            if key not in arrays:
                raise DatasetError(f"episode of task '{task}' (seed {seed}) lacks key '{key}'")
            value = np.ascontiguousarray(arrays[key], dtype=SCHEMA[key][0])
            if value.shape != (length, *self.shapes[key]):
                raise DatasetError(
                    f"episode of task '{task}' (seed {seed}): '{key}' has shape {value.shape}, "
                    f"expected {(length, *self.shapes[key])}"
                )
            values[key] = value
        for key, value in values.items():
            self.files[key].write(value.tobytes())
            self.files[key].flush()
            if key in self.float_keys:
                self._accumulate(key, value)
        episode = {"task": task, "instruction": instruction, "start": self.num_frames, "length": length,
                   "seed": int(seed)}
        self.episodes.append(episode)
        self.num_frames += length
        self._progress.write(json.dumps(episode) + "\n")  # the episode counts once this line is written
        self._progress.flush()

    @property
    def counts(self) -> dict[str, int]:
        """Episodes written so far, per task (after a resume: those kept from before)."""
        out: dict[str, int] = {}
        for e in self.episodes:
            out[e["task"]] = out.get(e["task"], 0) + 1
        return out

    def close(self, stats: dict[str, dict[str, Any]] | None = None) -> Path:
        """Write ``meta.json``. ``stats`` replaces the computed statistics of the keys it gives (an imported
        dataset's own: ``{key: {mean, std, min, max}}``)."""
        for f in self.files.values():
            f.close()
        self._progress.close()
        n = max(self.num_frames, 1)
        given = stats or {}
        stats = {}
        for k in self.float_keys:
            mean = self._sum[k] / n
            std = np.sqrt(np.maximum(self._sumsq[k] / n - mean**2, 0.0))
            stats[k] = {"mean": mean.tolist(), "std": std.tolist(), "min": self._min[k].tolist(), "max": self._max[k].tolist()}
            if k in given:
                stats[k] = {name: np.asarray(given[k][name], np.float64).reshape(self.shapes[k]).tolist()
                            for name in ("mean", "std", "min", "max")}
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "num_frames": self.num_frames,
            "keys": {k: {"dtype": SCHEMA[k][0], "shape": list(self.shapes[k]), "file": f"{k}.bin"} for k in self.keys},
            "episodes": self.episodes,
            "stats": stats,
            "generation": self.generation,
        }
        write_text_atomic(self.path / META_FILE, json.dumps(meta, indent=1))  # whole or not at all
        (self.path / PROGRESS_FILE).unlink(missing_ok=True)
        return self.path


def _read_progress(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(generation, finished episodes) of an unfinished writer's folder, or None. A torn last line is ignored."""
    if not path.is_file():
        return None
    lines = path.read_text().split("\n")
    try:
        header = json.loads(lines[0])["generation"]
    except (ValueError, KeyError, TypeError):
        return None
    episodes = []
    for line in lines[1:]:
        try:
            episodes.append(json.loads(line))
        except ValueError:
            break  # the line being written when the writer died
    return header, episodes


class EpisodeStore:
    """A validated, memory-mapped dataset folder. Opening checks everything the format promises."""

    def __init__(self, path: str | Path, check_values: bool = True) -> None:
        self.path = Path(path)
        meta_path = self.path / META_FILE
        if not meta_path.is_file():
            raise DatasetError(f"{meta_path}: no such file; is '{self.path}' a harmowam dataset? "
                               "Create one with `harmowam data generate`.")
        try:
            self.meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{meta_path}: not valid JSON ({exc})") from exc
        if not isinstance(self.meta, dict):
            raise DatasetError(f"{meta_path}: must hold a JSON object, got {type(self.meta).__name__}")
        if self.meta.get("format") != FORMAT_NAME:
            raise DatasetError(f"{meta_path}: 'format' is {self.meta.get('format')!r}, expected '{FORMAT_NAME}'")
        validate_meta(self.meta, meta_path, SCHEMA, REQUIRED_KEYS, DatasetError)
        self.num_frames = int(self.meta["num_frames"])
        self.arrays: dict[str, np.ndarray] = {}
        for key, spec in self.meta["keys"].items():
            dtype = SCHEMA[key][0]
            file = self.path / spec.get("file", f"{key}.bin")
            if not file.is_file():
                raise DatasetError(f"{file}: missing file for key '{key}'")
            shape = (self.num_frames, *spec["shape"])
            expected = math.prod(shape) * np.dtype(dtype).itemsize
            actual = file.stat().st_size
            if actual != expected:
                raise DatasetError(
                    f"{file}: {actual} bytes, but meta.json declares shape {list(shape)} of {dtype} "
                    f"({expected} bytes): shape mismatch, the file is truncated or from another dataset"
                )
            if key in FLOAT_KEYS and key not in self.meta["stats"]:
                raise DatasetError(f"{meta_path}: missing normalisation statistics for key '{key}'")
            self.arrays[key] = np.memmap(file, dtype=dtype, mode="r", shape=shape) if expected else np.zeros(shape, dtype)
        self.episodes = [
            EpisodeInfo(i, e["task"], e["instruction"], int(e["start"]), int(e["length"]), int(e.get("seed", -1)))
            for i, e in enumerate(self.meta["episodes"])
        ]
        if not self.episodes:
            raise DatasetError(f"{meta_path}: the dataset is empty (no episodes)")
        expected_start = 0
        for ep in self.episodes:
            if ep.start != expected_start or ep.length <= 0:
                raise DatasetError(f"{meta_path}: episode {ep.index} has start {ep.start} and length {ep.length}; "
                                   f"episodes must be back to back from frame 0")
            expected_start = ep.stop
        if expected_start != self.num_frames:
            raise DatasetError(f"{meta_path}: episodes cover {expected_start} frames but num_frames is {self.num_frames}")
        if check_values:
            self._check_finite()

    def _check_finite(self) -> None:
        for key in (k for k in FLOAT_KEYS if k in self.arrays):
            arr = self.arrays[key]
            bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
            if bad.any():
                frame = int(np.argmax(bad))
                ep = next(e for e in self.episodes if e.start <= frame < e.stop)
                raise DatasetError(
                    f"{self.path / self.meta['keys'][key]['file']}: NaN or inf in '{key}' at frame {frame} "
                    f"(episode {ep.index}, task '{ep.task}', step {frame - ep.start})"
                )

    # -- access ------------------------------------------------------------------------------
    @property
    def image_size(self) -> tuple[int, int]:
        h, w, _ = self.meta["keys"]["image"]["shape"]
        return h, w

    def dim(self, key: str) -> int:
        """Width of a per-frame vector (``state``, ``action``, ``env_state``)."""
        if key not in self.arrays:
            raise DatasetError(f"{self.path / META_FILE}: the dataset has no '{key}' (it holds {', '.join(self.arrays)})")
        return int(self.arrays[key].shape[1])

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        return {k: {s: np.asarray(v, np.float32) for s, v in d.items()} for k, d in self.meta["stats"].items()}

    @property
    def tasks(self) -> list[str]:
        return sorted({e.task for e in self.episodes})

    @property
    def instructions(self) -> list[str]:
        return sorted({e.instruction for e in self.episodes})

    def episode(self, index: int) -> dict[str, np.ndarray]:
        ep = self.episodes[index]
        return {k: np.asarray(a[ep.start:ep.stop]) for k, a in self.arrays.items()}

    def __len__(self) -> int:
        return len(self.episodes)

    def __repr__(self) -> str:
        return f"EpisodeStore('{self.path}', episodes={len(self)}, frames={self.num_frames}, tasks={self.tasks})"

