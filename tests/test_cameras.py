"""Camera views change what is seen, never the physics."""

from __future__ import annotations

import numpy as np
import pytest

from harmowam.sim.cameras import get_camera, list_cameras
from harmowam.sim.env import DEFAULT_CAMERA, make_env, render, reset_env


def test_unknown_camera_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown camera 'nope'. Cameras: corner,.*workspace"):
        get_camera("nope")
    assert DEFAULT_CAMERA in list_cameras() and "corner4" in list_cameras()


def test_workspace_view_narrows_and_moves_corner4_and_keeps_the_physics():
    import mujoco

    envs = {name: make_env("push", 32, name) for name in ("corner4", "workspace")}
    obs, frames, cams = {}, {}, {}
    for name, env in envs.items():
        obs[name] = reset_env(env, 3)
        frames[name] = render(env)
        cid = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_CAMERA, "corner4")
        cams[name] = (float(env.model.cam_fovy[cid]), env.data.cam_xpos[cid].copy())
    np.testing.assert_array_equal(obs["corner4"], obs["workspace"])
    assert cams["corner4"][0] == 60.0 and cams["workspace"][0] == 45.0
    view = get_camera("workspace")
    moved = np.linalg.norm(cams["workspace"][1] - cams["corner4"][1])
    assert moved == pytest.approx(np.hypot(view.right, view.up), abs=1e-6)  # placed by the reset's forward pass
    assert np.abs(frames["corner4"].astype(int) - frames["workspace"]).mean() > 10
    for env in envs.values():
        env.close()
