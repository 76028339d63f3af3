"""A harmowam dataset folder -> LeRobotDataset v3 (``harmowam data export-lerobot``).

Frames go into the data files as PNG (LeRobot's ``image`` feature) by default: lossless,
so that exporting and importing again gives the same training windows. ``video=True``
writes MP4 instead (AV1, LeRobot's own default), much smaller and lossy, for sharing.
The simulator's state travels as ``observation.environment_state``, LeRobot's name for it;
task names, scene seeds and the generation settings (camera, variation) in columns and a
file of harmowam's own (``meta/harmowam.json``), which LeRobot ignores and an import reads back.
"""

from __future__ import annotations

import json
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from harmowam.data.format import EpisodeStore
from harmowam.data.lerobot import layout
from harmowam.data.lerobot.video import encode_video
from harmowam.files import replace_folder

#: Meta-World steps its simulation 5 times 2.5 ms per action: 80 actions a second
METAWORLD_FPS = 80
CAMERA_KEY = "observation.image"


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _vector_type(pa: Any, width: int) -> Any:
    return pa.list_(pa.float32(), width)


def _hf_metadata(features: dict[str, Any]) -> bytes:
    """The ``huggingface`` schema metadata ``datasets`` reads back its column types from."""
    hf = {}
    for key, f in features.items():
        if f["dtype"] == "image":
            hf[key] = {"_type": "Image"}
        elif f["dtype"] == "float32" and key not in layout.INDEX_FEATURES:
            hf[key] = {"feature": {"dtype": "float32", "_type": "Value"}, "length": f["shape"][0], "_type": "List"}
        elif f["dtype"] != "video":
            hf[key] = {"dtype": f["dtype"], "_type": "Value"}
    return json.dumps({"info": {"features": hf}}).encode()


def _tasks_table(pa: Any, tasks: list[str]) -> Any:
    """Task strings as the pandas index of a ``task_index`` column, as LeRobot writes (and reads) them."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                     "metadata": None},
                    {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
                     "metadata": None}],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0"}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "__index_level_0__": pa.array(tasks)})
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def _stats(store: EpisodeStore, keys: dict[str, str]) -> dict[str, Any]:
    stats = {}
    for role, key in keys.items():
        s = store.meta["stats"][role]
        stats[key] = {**{name: s[name] for name in ("min", "max", "mean", "std")}, "count": [store.num_frames]}
    # per-channel image statistics in [0, 1], shaped [3, 1, 1] as LeRobot keeps them, from every 10th frame
    sample = np.asarray(store.arrays["image"][::10], np.float64) / 255.0
    per_channel = sample.reshape(-1, 3)
    stats[CAMERA_KEY] = {name: [[[float(v)]] for v in fn(per_channel, axis=0)]
                         for name, fn in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std))}
    stats[CAMERA_KEY]["count"] = [len(sample)]
    return stats


def export_lerobot(src: str | Path, out: str | Path, video: bool = False, fps: int | None = None,
                   robot_type: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Write the dataset at ``src`` as a LeRobotDataset v3 folder at ``out``; returns what was written."""
    pa = layout.pyarrow()
    store = EpisodeStore(src)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"'{out}' exists and is not empty; pass --overwrite to replace it")
    generation = store.meta.get("generation", {})
    fps = int(fps or generation.get("fps") or METAWORLD_FPS)
    keys = {"state": layout.STATE_KEY, "action": layout.ACTION_KEY}
    if "env_state" in store.arrays:
        keys["env_state"] = layout.ENV_STATE_KEY
    h, w = store.image_size
    features: dict[str, Any] = {CAMERA_KEY: {"dtype": "video" if video else "image", "shape": [h, w, 3],
                                             "names": ["height", "width", "channels"]}}
    for role, key in keys.items():
        features[key] = {"dtype": "float32", "shape": [store.dim(role)], "names": None}
    features.update({k: {"dtype": dt, "shape": [1], "names": None} for k, dt in layout.INDEX_FEATURES.items()})
    tasks = sorted({e.instruction for e in store.episodes})
    task_index = {t: i for i, t in enumerate(tasks)}

    def write(root: Path) -> None:
        n = store.num_frames
        episode_index = np.concatenate([np.full(e.length, e.index) for e in store.episodes])
        frame_index = np.concatenate([np.arange(e.length) for e in store.episodes])
        columns: dict[str, Any] = {}
        if not video:
            columns[CAMERA_KEY] = pa.array([{"bytes": _png(np.asarray(img)), "path": None} for img in store.arrays["image"]],
                                           pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        for role, key in keys.items():
            values = np.asarray(store.arrays[role], np.float32)
            columns[key] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
        columns["timestamp"] = pa.array((frame_index / fps).astype(np.float32))
        columns["frame_index"] = pa.array(frame_index.astype(np.int64))
        columns["episode_index"] = pa.array(episode_index.astype(np.int64))
        columns["index"] = pa.array(np.arange(n, dtype=np.int64))
        columns["task_index"] = pa.array(np.concatenate(
            [np.full(e.length, task_index[e.instruction]) for e in store.episodes]).astype(np.int64))
        table = pa.table(columns).replace_schema_metadata({b"huggingface": _hf_metadata(features)})
        data_file = root / layout.DATA_PATH.format(chunk_index=0, file_index=0)
        data_file.parent.mkdir(parents=True)
        pa.parquet.write_table(table, data_file)

        episodes: dict[str, Any] = {
            "episode_index": [e.index for e in store.episodes], "tasks": [[e.instruction] for e in store.episodes],
            "length": [e.length for e in store.episodes], "data/chunk_index": [0] * len(store),
            "data/file_index": [0] * len(store), "dataset_from_index": [e.start for e in store.episodes],
            "dataset_to_index": [e.stop for e in store.episodes]}
        if video:
            path = root / layout.VIDEO_PATH.format(video_key=CAMERA_KEY, chunk_index=0, file_index=0)
            bounds = encode_video(path, (store.episode(e.index)["image"] for e in store.episodes), fps)
            prefix = f"videos/{CAMERA_KEY}"
            episodes.update({f"{prefix}/chunk_index": [0] * len(store), f"{prefix}/file_index": [0] * len(store),
                             f"{prefix}/from_timestamp": [b[0] for b in bounds],
                             f"{prefix}/to_timestamp": [b[1] for b in bounds]})
            features[CAMERA_KEY]["info"] = {"video.height": h, "video.width": w, "video.codec": "av1",
                                            "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                                            "video.fps": fps, "video.channels": 3, "has_audio": False}
        episodes.update({"meta/episodes/chunk_index": [0] * len(store), "meta/episodes/file_index": [0] * len(store),
                         # harmowam's own, which LeRobot carries along unread: task names and scene seeds
                         layout.TASK_NAME_COLUMN: [e.task for e in store.episodes],
                         layout.SEED_COLUMN: [e.seed for e in store.episodes]})
        episodes_file = root / layout.EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_file.parent.mkdir(parents=True)
        pa.parquet.write_table(pa.table(episodes), episodes_file)
        pa.parquet.write_table(_tasks_table(pa, tasks), root / layout.TASKS)

        info = {"codebase_version": layout.CODEBASE_VERSION, "robot_type": robot_type or generation.get("robot_type"),
                "total_episodes": len(store), "total_frames": n, "total_tasks": len(tasks), "chunks_size": 1000,
                "data_files_size_in_mb": 100, "video_files_size_in_mb": 200, "fps": fps,
                "splits": {"train": f"0:{len(store)}"}, "data_path": layout.DATA_PATH,
                "video_path": layout.VIDEO_PATH if video else None, "features": features}
        (root / layout.INFO).write_text(json.dumps(info, indent=4))
        (root / layout.STATS).write_text(json.dumps(_stats(store, keys), indent=4))
        (root / layout.HARMOWAM_META).write_text(json.dumps({"generation": generation}, indent=1))

    replace_folder(out, write)
    return {"out": str(out), "episodes": len(store), "frames": store.num_frames, "fps": fps,
            "images": "video (AV1)" if video else "PNG in the data files", "tasks": len(tasks)}
