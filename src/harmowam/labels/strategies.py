"""Automatic phase labels: which frames of an episode are interaction (True) or transit (False).

Each strategy is a function ``(episode, task, **options) -> bool[T]`` over one
episode's arrays (``state``, ``env_state``, ``action``), registered by name.

Defaults are chosen for Meta-World's 50 to 90-step episodes: the paper's window of
20 steps is for real episodes several times longer, so ``gripper_events`` uses 6.
drawer-open, button-press-topdown and door-open have few or no gripper events;
``proximity`` (hand near the object, from the stored environment state) covers them.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _dilate(events: np.ndarray, window: int) -> np.ndarray:
    """True at every frame within ``window`` steps of an event frame."""
    out = np.zeros(len(events), dtype=bool)
    for i in np.flatnonzero(events):
        out[max(i - window, 0): i + window + 1] = True
    return out


def gripper_events(episode: dict[str, np.ndarray], task: str | None = None, window: int = 6,
                   threshold: float = 0.0, gripper_index: int = -1) -> np.ndarray:
    """Frames within ``window`` steps of a gripper open/close command (the paper's rule).

    An event is a crossing of ``threshold`` by the gripper command ``action[:, gripper_index]``
    (the last action dimension by default: Meta-World's effort, and the usual place of a
    real arm's gripper). Needs only actions, so it labels imported robot data too.
    """
    closing = episode["action"][:, gripper_index] > threshold
    events = np.zeros(len(closing), dtype=bool)
    events[1:] = closing[1:] != closing[:-1]
    return _dilate(events, window)


def ee_height(episode: dict[str, np.ndarray], task: str | None = None, window: int = 3,
              height: float = 0.08) -> np.ndarray:
    """Frames within ``window`` steps of the hand being below ``height`` metres (the paper's height event)."""
    return _dilate(episode["state"][:, 2] < height, window)


def proximity(episode: dict[str, np.ndarray], task: str | None = None, radius: float = 0.08,
              window: int = 1) -> np.ndarray:
    """Frames where the hand is within ``radius`` metres of the first object (dilated by ``window``).

    Needs no gripper event, so it labels pushing, pressing and pulling tasks too. The
    default radius reaches every task's contact: the closest the hand's reference point
    comes to the tracked point is 0.02 m (drawer handle) to 0.073 m (plate centre).
    """
    if "env_state" not in episode:
        raise KeyError("label strategy 'proximity' needs the simulator's 'env_state', which this dataset does not "
                       "hold (an imported dataset): use 'gripper_events' or 'ee_height'")
    env = episode["env_state"]
    near = np.linalg.norm(env[:, 0:3] - env[:, 4:7], axis=1) < radius
    return _dilate(near, window)


def interaction_fractions(store: Any, strategy: Any, **options: Any) -> dict[str, float]:
    """Fraction of interaction frames per task, for reporting and choosing defaults."""
    counts: dict[str, list[int]] = {}
    for ep in store.episodes:
        labels = strategy(store.episode(ep.index), task=ep.task, **options)
        c = counts.setdefault(ep.task, [0, 0])
        c[0] += int(labels.sum())
        c[1] += len(labels)
    return {task: pos / max(total, 1) for task, (pos, total) in sorted(counts.items())}
