"""The LeRobotDataset v3.0 layout, as the ``lerobot`` package writes and reads it.

A dataset folder::

    meta/info.json                                  codebase_version "v3.0", fps, features, path templates
    meta/stats.json                                 per feature: min, max, mean, std, count (and quantiles)
    meta/tasks.parquet                              task strings (the pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet        one row per episode: length, tasks, where its rows and
                                                    video segment are (dataset_from_index, videos/<key>/...)
    data/chunk-000/file-000.parquet                 one row per frame: vector features, timestamp, indices;
                                                    image features as PNG bytes
    videos/<key>/chunk-000/file-000.mp4             video features, episodes back to back
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harmowam.data.format import DatasetError

CODEBASE_VERSION = "v3.0"
INFO = "meta/info.json"
STATS = "meta/stats.json"
TASKS = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
#: LeRobot's names for what harmowam stores as state, action and the simulator's state
STATE_KEY, ACTION_KEY, ENV_STATE_KEY = "observation.state", "action", "observation.environment_state"
#: what harmowam adds for a lossless round trip (LeRobot ignores them)
TASK_NAME_COLUMN, SEED_COLUMN, HARMOWAM_META = "harmowam/task", "harmowam/seed", "meta/harmowam.json"
#: columns every v3 data file has beside the features
INDEX_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                  "task_index": "int64"}


def pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:  # an optional extra
        raise ImportError("LeRobot datasets need pyarrow: pip install 'harmowam[lerobot]'") from exc
    return pyarrow


def read_info(root: Path) -> dict[str, Any]:
    path = root / INFO
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; is '{root}' a LeRobotDataset folder?")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v3."):
        raise DatasetError(f"{path}: codebase_version is {version!r}; harmowam reads LeRobotDataset v3 (convert "
                           "an older dataset with lerobot's v2.1-to-v3.0 conversion script first)")
    for key in ("fps", "features"):
        if key not in info:
            raise DatasetError(f"{path}: missing key '{key}'")
    return info


def image_keys(info: dict[str, Any]) -> list[str]:
    return [k for k, f in info["features"].items() if f.get("dtype") in ("video", "image")]


def choose_camera(info: dict[str, Any], root: Path, camera: str | None) -> str:
    cameras = image_keys(info)
    if camera is not None:
        if camera not in cameras:
            raise DatasetError(f"{root / INFO}: no camera feature '{camera}'; cameras are {', '.join(cameras) or 'none'}")
        return camera
    if len(cameras) != 1:
        raise DatasetError(f"{root / INFO}: {len(cameras)} camera features ({', '.join(cameras) or 'none'}); "
                           "choose one with --camera")
    return cameras[0]


def vector_width(info: dict[str, Any], root: Path, key: str, role: str) -> int:
    feature = None if key in INDEX_FEATURES else info["features"].get(key)
    if feature is None:
        vectors = [k for k, f in info["features"].items()
                   if f.get("dtype", "").startswith("float") and k not in INDEX_FEATURES]
        raise DatasetError(f"{root / INFO}: no feature '{key}' for the {role}; float features are {', '.join(vectors)} "
                           f"(choose with --{role}-key)")
    shape = feature.get("shape")
    if not str(feature.get("dtype", "")).startswith("float") or not isinstance(shape, list) or len(shape) != 1:
        raise DatasetError(f"{root / INFO}: feature '{key}' ({feature.get('dtype')}, shape {shape}) is not a "
                           f"float vector, so it cannot be the {role}")
    return int(shape[0])


def column_matrix(table: Any, name: str) -> Any:
    """A list-of-floats column as a ``float32 [rows, width]`` array."""
    import numpy as np

    column = table.column(name).combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return values.reshape(len(column), -1)
