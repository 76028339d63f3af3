"""Rollout videos and gate timelines.

A gate timeline shows, step by step, which expert produced the executed action,
above the task's phase labels (``proximity``: hand near the object) and the
hand-to-object distance against the task's transit distance: whether the gate
handed over to the predictive expert where the interaction phase began.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from harmowam.files import temporary_name

EXPERT_COLOURS = {"predictive": "#1f77b4", "reactive": "#ff7f0e", "average": "#7f7f7f",
                  "scripted": "#2ca02c", "random": "#d62728"}


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int = 20) -> Path:
    """Frames ``[H, W, 3]`` uint8 to a GIF (or MP4 when the path says so and imageio-ffmpeg is installed)."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        if path.suffix == ".gif":
            iio.imwrite(tmp, np.stack(frames), duration=1000 / fps, loop=0)
        else:
            iio.imwrite(tmp, np.stack(frames), fps=fps)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def gate_timeline(path: str | Path, experts: Sequence[str], phase: np.ndarray, distance: np.ndarray,
                  transit_distance: float, title: str) -> Path:
    """A PNG: the acting expert per step, the phase labels, and the hand-object distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    steps = np.arange(len(experts))
    names = list(dict.fromkeys(experts))
    fig, (ax_e, ax_p, ax_d) = plt.subplots(3, 1, figsize=(7, 3.2), sharex=True,
                                           gridspec_kw={"height_ratios": [1, 1, 2]})
    ax_e.bar(steps, 1, width=1, color=[EXPERT_COLOURS.get(e, "#9467bd") for e in experts], align="edge")
    ax_e.set_yticks([])
    ax_e.set_ylabel("expert", rotation=0, ha="right", va="center")
    ax_e.legend(handles=[Patch(color=EXPERT_COLOURS.get(n, "#9467bd"), label=n) for n in names],
                loc="upper left", bbox_to_anchor=(1.0, 1.2), fontsize=7, frameon=False)
    ax_p.bar(np.arange(len(phase)), np.asarray(phase, dtype=float), width=1, color="#555555", align="edge")
    ax_p.set_yticks([])
    ax_p.set_ylabel("interaction\nlabel", rotation=0, ha="right", va="center", fontsize=8)
    ax_d.plot(np.arange(len(distance)), distance, color="black", lw=1)
    ax_d.axhline(transit_distance, color="#d62728", ls="--", lw=1, label="transit distance")
    ax_d.set_ylabel("hand-object\ndistance (m)", rotation=0, ha="right", va="center", fontsize=8)
    ax_d.set_xlabel("step")
    ax_d.legend(loc="upper right", fontsize=7, frameon=False)
    ax_e.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return path
