"""Import speed from LeRobotDataset v3, and why harmowam converts instead of reading MP4 while training.

    python benchmarks/lerobot_import.py --data runs/pipeline/quick/data/demos

Exports the harmowam dataset ``--data`` as a LeRobot v3 folder with AV1 video (what
real LeRobot datasets hold), imports it back (frames per second of the whole import:
Parquet, decoding, writing), then times reading one random frame the two ways a
training window could: a page-cache read from the imported raw arrays, and a seek plus
decode from the MP4 (what a datamodule reading v3 directly would do per frame). Medians
over ``--reads`` random frames; writes ``benchmarks/lerobot_import.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from harmowam.data.format import EpisodeStore
from harmowam.data.lerobot import import_lerobot
from harmowam.data.lerobot.reader import LeRobotReader
from harmowam.data.lerobot.writer import CAMERA_KEY, export_lerobot


def mp4_frame(path: Path, t: float, fps: float) -> np.ndarray:
    """Seek to the keyframe before ``t`` and decode forward to the frame at ``t`` (PyAV)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.time >= t - 0.5 / fps:
                return frame.to_ndarray(format="rgb24")
    raise RuntimeError(f"no frame at {t}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a harmowam dataset folder (e.g. a pipeline's data/demos)")
    ap.add_argument("--reads", type=int, default=200, help="random single-frame reads per path")
    ap.add_argument("--out", default=str(Path(__file__).with_name("lerobot_import.json")))
    args = ap.parse_args()
    source = EpisodeStore(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        lerobot, back = Path(tmp) / "lerobot", Path(tmp) / "back"
        t0 = time.perf_counter()
        export_lerobot(args.data, lerobot, video=True)
        export_s = time.perf_counter() - t0
        summary = import_lerobot(lerobot, back)
        imported = EpisodeStore(back)
        reader = LeRobotReader(lerobot)
        video = next((lerobot / "videos" / CAMERA_KEY).rglob("*.mp4"))
        rng = np.random.default_rng(0)
        frames = rng.integers(0, imported.num_frames, args.reads)
        bounds = {e["episode_index"]: e[f"videos/{CAMERA_KEY}/from_timestamp"] for e in reader.episodes}
        memmap_s, mp4_s = [], []
        for f in frames:
            ep = next(e for e in imported.episodes if e.start <= f < e.stop)
            t0 = time.perf_counter()
            np.array(imported.arrays["image"][f])
            memmap_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            mp4_frame(video, bounds[ep.index] + (f - ep.start) / reader.fps, reader.fps)
            mp4_s.append(time.perf_counter() - t0)
        error = float(np.abs(source.arrays["image"].astype(np.int16) - imported.arrays["image"].astype(np.int16)).mean())
        result = {
            "data": str(args.data), "frames": summary["frames"], "episodes": summary["episodes"],
            "image_size": summary["image_size"], "video_bytes": video.stat().st_size,
            "export_seconds": round(export_s, 2), "import_seconds": summary["seconds"],
            "import_frames_per_second": summary["frames_per_second"],
            "median_frame_read_ms": {"harmowam_memmap": round(1e3 * statistics.median(memmap_s), 4),
                                     "lerobot_mp4_seek_decode": round(1e3 * statistics.median(mp4_s), 3)},
            "mp4_over_memmap": round(statistics.median(mp4_s) / statistics.median(memmap_s), 1),
            "mean_abs_pixel_error_after_av1": round(error, 2), "reads": args.reads,
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPUs",
        }
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
