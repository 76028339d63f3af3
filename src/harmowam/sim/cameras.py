"""Named camera views: one of Meta-World's cameras, optionally narrowed and shifted.

Meta-World's ``corner4`` (the default) sees the whole robot, and at 64 px the objects
of the precise tasks are a few pixels (push's goal is 1 to 2). ``workspace`` is
``corner4`` with a narrower field of view (45 degrees instead of 60), moved along its
own image axes so that the workspace fills more of the frame: every object and goal of
the six tasks stays in view under the ``position`` condition, and objects are about
1.4 times wider. Measured with the quick pipeline it did worse, push 0/10 for every
learned policy (docs/stage2_recipe.md), so it is an option, not the default.

A view is applied to the compiled MuJoCo model, so the environment, its physics and
its seeds are untouched; only what the camera sees changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

METAWORLD_CAMERAS = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")


@dataclass(frozen=True)
class CameraView:
    """``camera``: a camera of the Meta-World model; ``fovy``: vertical field of view in degrees (None keeps
    the model's); ``right``, ``up``: metres to move the camera along its own image axes."""

    camera: str
    fovy: float | None = None
    right: float = 0.0
    up: float = 0.0

    def apply(self, model: Any) -> None:
        """Set this view's field of view and position on a compiled MuJoCo model."""
        import mujoco

        cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, self.camera)
        if cid < 0:
            raise ValueError(f"the model has no camera '{self.camera}'")
        if self.fovy is not None:
            model.cam_fovy[cid] = self.fovy
        if self.right or self.up:
            rot = np.zeros(9)
            mujoco.mju_quat2Mat(rot, model.cam_quat[cid])
            rot = rot.reshape(3, 3)  # columns: the camera's right, up and backward axes
            model.cam_pos[cid] = model.cam_pos[cid] + self.right * rot[:, 0] + self.up * rot[:, 1]


CAMERAS: dict[str, CameraView] = {name: CameraView(name) for name in METAWORLD_CAMERAS}
CAMERAS["workspace"] = CameraView("corner4", fovy=45.0, right=-0.12, up=-0.08)


def list_cameras() -> list[str]:
    return list(CAMERAS)


def get_camera(name: str) -> CameraView:
    if name not in CAMERAS:
        raise ValueError(f"unknown camera '{name}'. Cameras: {', '.join(CAMERAS)}")
    return CAMERAS[name]
