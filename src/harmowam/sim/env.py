"""Building a Meta-World v3 environment that behaves (see SIMULATOR.md for why each step)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from harmowam.sim.tasks import get_task

DEFAULT_CAMERA = "corner4"


def make_env(task: str, image_size: int = 64, camera: str = DEFAULT_CAMERA, fast_render: bool = True) -> Any:
    """A seeded-reset Meta-World environment that renders ``image_size`` square RGB frames."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError("Meta-World is not installed: pip install 'harmowam[sim]'") from exc

    spec = get_task(task)
    env = ALL_V3_ENVIRONMENTS[spec.env_name](
        render_mode="rgb_array", width=image_size, height=image_size, camera_name=camera
    )
    env._partially_observable = False  # the goal position is in the observation
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True  # resets are a function of env.seed(s)
    env._set_task_called = True
    # Cached bounds clip the goal in the observation to zero; drop them.
    env.__dict__.pop("sawyer_observation_space", None)
    if fast_render:
        model = env.model
        model.light_castshadow[:] = 0
        model.vis.quality.offsamples = 0
        model.mat_reflectance[:] = 0
    return env


def reset_env(env: Any, seed: int) -> np.ndarray:
    env.seed(int(seed))
    obs, _ = env.reset()
    return obs


def render(env: Any) -> np.ndarray:
    """The current frame, upright (MuJoCo's offscreen image is upside down)."""
    return np.ascontiguousarray(env.render()[::-1])


def expert_policy(task: str) -> Any:
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[get_task(task).env_name]()
