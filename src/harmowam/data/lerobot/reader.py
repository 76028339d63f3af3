"""LeRobotDataset v3 -> a harmowam dataset folder (``harmowam data import-lerobot``).

Why convert rather than read v3 while training: a training window reads 6 frames at
random places; from MP4 each costs a seek and the decoding of a group of pictures,
from harmowam's raw arrays a page-cache read. Decoding once, at import, is what two
CPU cores can afford (``benchmarks/lerobot_import.py`` measures both).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from harmowam.data.format import META_FILE, DatasetError, EpisodeWriter
from harmowam.data.lerobot import layout
from harmowam.data.lerobot.video import decode_segments
from harmowam.files import replace_folder


def _read_table(path: Path, columns: list[str] | None = None) -> Any:
    pq = layout.pyarrow().parquet
    if not path.is_file():
        raise DatasetError(f"{path}: no such file (named by the dataset's metadata)")
    try:
        return pq.read_table(path, columns=columns)
    except KeyError as exc:
        raise DatasetError(f"{path}: no column {exc}") from exc


def read_tasks(root: Path) -> dict[int, str]:
    """task_index -> task string. LeRobot stores the strings as the table's pandas index."""
    table = _read_table(root / layout.TASKS)
    strings = [c for c in table.column_names if c != "task_index"]
    if "task_index" not in table.column_names or len(strings) != 1:
        raise DatasetError(f"{root / layout.TASKS}: expected columns task_index and the task strings, "
                           f"got {table.column_names}")
    return dict(zip(table.column("task_index").to_pylist(), table.column(strings[0]).to_pylist()))


def read_episodes(root: Path) -> list[dict[str, Any]]:
    """One dict per episode (episode-level stats columns left out), sorted by episode_index."""
    files = sorted((root / layout.EPISODES_DIR).glob("chunk-*/file-*.parquet"))
    if not files:
        raise DatasetError(f"{root / layout.EPISODES_DIR}: no episode files")
    rows = []
    for f in files:
        table = _read_table(f)
        table = table.select([c for c in table.column_names if not c.startswith("stats/")])
        rows.extend(table.to_pylist())
    return sorted(rows, key=lambda r: r["episode_index"])


def _square(images: np.ndarray, size: int | None, where: str) -> np.ndarray:
    """Centre-crop to a square and resize (area-averaging when shrinking) to ``size``."""
    h, w = images.shape[1:3]
    if size is None:
        if h != w:
            raise DatasetError(f"{where}: frames are {h}x{w}; pass --image-size to crop them square and resize")
        return images
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    images = images[:, top:top + side, left:left + side]
    if side == size:
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _decode_png(column: Any) -> np.ndarray:
    from io import BytesIO

    from PIL import Image

    return np.stack([np.asarray(Image.open(BytesIO(cell["bytes"])).convert("RGB")) for cell in column.to_pylist()])


class LeRobotReader:
    """Episodes of a LeRobotDataset v3 folder as harmowam arrays, with their task strings."""

    def __init__(self, root: str | Path, camera: str | None = None, state_key: str = layout.STATE_KEY,
                 action_key: str = layout.ACTION_KEY) -> None:
        self.root = Path(root)
        self.info = layout.read_info(self.root)
        self.fps = float(self.info["fps"])
        self.camera = layout.choose_camera(self.info, self.root, camera)
        self.is_video = self.info["features"][self.camera]["dtype"] == "video"
        self.keys = {"state": state_key, "action": action_key}
        self.shapes = {role: (layout.vector_width(self.info, self.root, key, role),) for role, key in self.keys.items()}
        if layout.ENV_STATE_KEY in self.info["features"]:
            self.keys["env_state"] = layout.ENV_STATE_KEY
            self.shapes["env_state"] = (layout.vector_width(self.info, self.root, layout.ENV_STATE_KEY, "env-state"),)
        self.tasks = read_tasks(self.root)
        self.episodes = read_episodes(self.root)

    def stats(self) -> dict[str, dict[str, Any]]:
        """The dataset's own statistics for state and action, where ``meta/stats.json`` has them."""
        path = self.root / layout.STATS
        if not path.is_file():
            return {}
        stats = json.loads(path.read_text())
        return {role: stats[key] for role, key in self.keys.items()
                if all(s in stats.get(key, {}) for s in ("mean", "std", "min", "max"))}

    def _data_files(self) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
        """Each data file with the episodes whose rows it holds, in file order."""
        by_file: dict[tuple[int, int], list[dict[str, Any]]] = {}
        for ep in self.episodes:
            by_file.setdefault((ep["data/chunk_index"], ep["data/file_index"]), []).append(ep)
        for (chunk, file), eps in sorted(by_file.items()):
            yield self.root / self.info.get("data_path", layout.DATA_PATH).format(chunk_index=chunk, file_index=file), eps

    def __iter__(self) -> Iterator[tuple[dict[str, np.ndarray], dict[str, Any]]]:
        """``(arrays, episode row)`` per episode, images at their stored size."""
        columns = [*self.keys.values(), "episode_index", "frame_index", "timestamp", "task_index"]
        if not self.is_video:
            columns.append(self.camera)
        for path, eps in self._data_files():
            table = _read_table(path, columns)
            episode_of = table.column("episode_index").to_numpy()
            frame_of = table.column("frame_index").to_numpy()
            rows = {}
            for ep in eps:
                index = np.flatnonzero(episode_of == ep["episode_index"])
                index = index[np.argsort(frame_of[index])]
                if len(index) != ep["length"]:
                    raise DatasetError(f"{path}: episode {ep['episode_index']} has {len(index)} rows, its metadata "
                                       f"says {ep['length']}")
                rows[ep["episode_index"]] = index
            frames = self._video_frames(eps, table, rows) if self.is_video else None
            for ep in eps:
                part = table.take(rows[ep["episode_index"]])
                arrays = {role: layout.column_matrix(part, key) for role, key in self.keys.items()}
                arrays["image"] = next(frames) if frames is not None else _decode_png(part.column(self.camera))
                instruction = self.tasks[int(part.column("task_index")[0].as_py())]
                yield arrays, {**ep, "instruction": instruction, "task": ep.get(layout.TASK_NAME_COLUMN) or instruction,
                               "seed": ep.get(layout.SEED_COLUMN, ep["episode_index"])}

    def _video_frames(self, eps: list[dict[str, Any]], table: Any, rows: dict[int, np.ndarray]) -> Iterator[np.ndarray]:
        """Decoded frames per episode of ``eps``, in that order (each video file decoded once, front to back)."""
        key = f"videos/{self.camera}"
        template = self.info.get("video_path", layout.VIDEO_PATH)
        timestamps = table.column("timestamp").to_numpy()
        jobs: list[tuple[tuple[int, int], float, int]] = []
        for ep in eps:
            for k in ("chunk_index", "file_index", "from_timestamp"):
                if f"{key}/{k}" not in ep:
                    raise DatasetError(f"{self.root / layout.EPISODES_DIR}: no column '{key}/{k}' for video "
                                       f"feature '{self.camera}'")
            jobs.append(((ep[f"{key}/chunk_index"], ep[f"{key}/file_index"]), ep[f"{key}/from_timestamp"],
                         ep["episode_index"]))
        decoded: dict[int, np.ndarray] = {}
        by_file: dict[tuple[int, int], list[tuple[float, int]]] = {}
        for where, start, e in jobs:
            by_file.setdefault(where, []).append((start, e))
        order = [e for _, _, e in jobs]
        for (chunk, file), segs in by_file.items():
            segs.sort()
            path = self.root / template.format(video_key=self.camera, chunk_index=chunk, file_index=file)
            if not path.is_file():
                raise DatasetError(f"{path}: no such file (named by {self.root / layout.EPISODES_DIR})")
            wanted = [start + timestamps[rows[e]].astype(np.float64) for start, e in segs]
            for (_, e), images in zip(segs, decode_segments(path, wanted, self.fps)):
                decoded[e] = images
        for e in order:
            yield decoded.pop(e)


def import_lerobot(src: str | Path, out: str | Path, camera: str | None = None, state_key: str = layout.STATE_KEY,
                   action_key: str = layout.ACTION_KEY, image_size: int | None = None,
                   overwrite: bool = False) -> dict[str, Any]:
    """Convert a LeRobotDataset v3 folder into a harmowam dataset at ``out``; returns counts and the speed."""
    t0 = time.perf_counter()
    reader = LeRobotReader(src, camera, state_key, action_key)
    out = Path(out)
    if (out / META_FILE).exists() and not overwrite:
        raise FileExistsError(f"{out / META_FILE} exists; pass --overwrite to replace it")
    side = image_size or reader.info["features"][reader.camera]["shape"][0]
    generation = {"source": "lerobot", "lerobot_root": str(Path(src).resolve()), "lerobot_camera": reader.camera,
                  "state_key": state_key, "action_key": action_key, "fps": reader.fps,
                  "robot_type": reader.info.get("robot_type"), "image_size": side}
    exported = reader.root / layout.HARMOWAM_META
    recorded = json.loads(exported.read_text())["generation"] if exported.is_file() else None
    if recorded is not None and image_size in (None, recorded.get("image_size")):
        generation = recorded  # exported by harmowam: its scenes, as they were
    frames = 0

    def write(folder: Path) -> None:  # into a temporary folder, swapped in whole: a failed import leaves `out` as it was
        nonlocal frames
        writer = EpisodeWriter(folder, side, generation, shapes=reader.shapes)
        for arrays, ep in reader:
            arrays["image"] = _square(arrays["image"], image_size, f"{reader.root} episode {ep['episode_index']}")
            writer.add_episode(arrays, ep["task"], ep["instruction"], int(ep["seed"]))
            frames += len(arrays["action"])
        writer.close(stats=reader.stats())

    replace_folder(out, write)
    seconds = time.perf_counter() - t0
    return {"out": str(out), "episodes": len(reader.episodes), "frames": frames, "seconds": round(seconds, 2),
            "frames_per_second": round(frames / max(seconds, 1e-9), 1), "camera": reader.camera,
            "image_size": side, "state_dim": reader.shapes["state"][0], "action_dim": reader.shapes["action"][0]}
