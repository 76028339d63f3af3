"""MP4 frames in and out through PyAV.

PyAV rather than torchcodec: its wheels bundle FFmpeg (with the dav1d AV1 decoder and
the SVT-AV1 encoder LeRobot writes with), so it installs from PyPI alone, beside any
torch; torchcodec's wheels are built against one torch release and need FFmpeg's
shared libraries from the system.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from harmowam.data.format import DatasetError


def _av():
    try:
        import av
    except ImportError as exc:  # an optional extra
        raise ImportError("reading or writing LeRobot videos needs PyAV: pip install 'harmowam[lerobot]'") from exc
    return av


def decode_segments(path: Path, segments: Sequence[np.ndarray], fps: float) -> Iterator[np.ndarray]:
    """Frames of ``path`` at the given timestamps (seconds), one ``uint8 [T, H, W, 3]`` array per segment.

    ``segments`` are ascending lists of timestamps, in file order (LeRobot packs episodes
    back to back in one file). The file is decoded once, front to back; a frame counts for
    a timestamp within half a frame period of it.
    """
    av = _av()
    tolerance = 0.5 / fps
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = container.decode(stream)
        for times in segments:
            out = []
            for t in times:
                for frame in frames:
                    if frame.time is None or frame.time >= t - tolerance:
                        break
                else:
                    raise DatasetError(f"{path}: ends before timestamp {t:.4f} s")
                if abs(frame.time - t) > tolerance:
                    raise DatasetError(f"{path}: no frame within {tolerance:.4f} s of timestamp {t:.4f} s "
                                       f"(next frame at {frame.time:.4f} s)")
                out.append(frame.to_ndarray(format="rgb24"))
            yield np.stack(out)


def encode_video(path: Path, episodes: Iterator[np.ndarray], fps: int, codec: str = "libsvtav1",
                 crf: int = 30) -> list[tuple[float, float]]:
    """Write episodes' frames back to back into one MP4; returns each episode's ``(from, to)`` seconds.

    The defaults are LeRobot's (AV1 by SVT-AV1, yuv420p, one frame period per frame).
    """
    av = _av()
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration otherwise
    path.parent.mkdir(parents=True, exist_ok=True)
    bounds, n = [], 0
    with av.open(str(path), "w") as container:
        stream = None
        for frames in episodes:
            if stream is None:
                stream = container.add_stream(codec, rate=fps, options={"crf": str(crf)} if codec == "libsvtav1" else {})
                stream.height, stream.width = frames.shape[1:3]
                stream.pix_fmt = "yuv420p"
                stream.time_base = Fraction(1, fps)
            start = n
            for image in frames:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                frame.pts = n
                container.mux(stream.encode(frame))
                n += 1
            bounds.append((start / fps, n / fps))
        if stream is not None:
            container.mux(stream.encode(None))
    return bounds
