"""Building a Meta-World v3 environment that behaves (see SIMULATOR.md for why each step)."""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from harmowam.sim.cameras import get_camera
from harmowam.sim.tasks import get_task, list_tasks

DEFAULT_CAMERA = "corner4"  # "workspace" was measured worse: docs/stage2_recipe.md
DEFAULT_IMAGE_SIZE = 64  # rendered frame side when nothing else sets it (the CPU quick preset renders at 48)


def make_env(task: str, image_size: int = DEFAULT_IMAGE_SIZE, camera: str = DEFAULT_CAMERA, fast_render: bool = True,
             object_shape: str | None = None) -> Any:
    """A seeded-reset Meta-World environment that renders ``image_size`` square RGB frames.

    ``camera`` names a view in :data:`~harmowam.sim.cameras.CAMERAS`. ``object_shape`` (a name
    in :data:`~harmowam.sim.variations.OBJECT_SHAPES`) compiles the task's model with its
    object geom replaced; tasks without a swappable geom reject it.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError("Meta-World is not installed: pip install 'harmowam[sim]'") from exc

    spec = get_task(task)
    view = get_camera(camera)
    env_cls = ALL_V3_ENVIRONMENTS[spec.env_name]
    if object_shape is not None:
        env_cls = _with_object_shape(env_cls, task, object_shape)
    env = env_cls(render_mode="rgb_array", width=image_size, height=image_size, camera_name=view.camera)
    view.apply(env.model)  # before the first reset, whose forward pass places the camera
    env._partially_observable = False  # the goal position is in the observation
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True  # resets are a function of env.seed(s)
    env._set_task_called = True
    # Cached bounds clip the goal in the observation to zero; drop them.
    env.__dict__.pop("sawyer_observation_space", None)
    # Defaults that scene variations change and restore (one environment serves every variation).
    env._harmowam_defaults = {"reset_space": env._random_reset_space, "goal_space": env.goal_space,
                              "geom_rgba": env.model.geom_rgba.copy(), "geom_matid": env.model.geom_matid.copy()}
    if fast_render:
        model = env.model
        model.light_castshadow[:] = 0
        model.vis.quality.offsamples = 0
        model.mat_reflectance[:] = 0
    return env


def _with_object_shape(env_cls: type, task: str, shape: str) -> type:
    """A subclass of ``env_cls`` whose model is compiled from an MjSpec with the object geom reshaped."""
    import mujoco

    from harmowam.sim.variations import OBJECT_SHAPES

    spec = get_task(task)
    if spec.object_geom is None:
        raise ValueError(f"task '{task}' has no swappable object geom; object shapes apply to "
                         f"{', '.join(t for t in list_tasks() if get_task(t).object_geom)}")
    if shape not in OBJECT_SHAPES:
        raise ValueError(f"unknown object shape '{shape}'. Shapes: {', '.join(OBJECT_SHAPES)}")
    geom_type, size = OBJECT_SHAPES[shape]

    def _initialize_simulation(self: Any) -> tuple[Any, Any]:
        mjspec = mujoco.MjSpec.from_file(self.fullpath)
        geom = mjspec.geom(spec.object_geom)
        geom.type = getattr(mujoco.mjtGeom, f"mjGEOM_{geom_type.upper()}")
        geom.size = list(size)
        model = mjspec.compile()
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    # Same class name: Meta-World derives the task name from it.
    return type(env_cls.__name__, (env_cls,), {"_initialize_simulation": _initialize_simulation})


_CACHE: dict[tuple, Any] = {}


def cached_env(task: str, image_size: int = DEFAULT_IMAGE_SIZE, camera: str = DEFAULT_CAMERA,
               object_shape: str | None = None, instance: int = 0) -> Any:
    """One environment per (task, size, camera, shape, instance) and process: building one costs more than an
    episode. Episodes that run at the same time in one process use different ``instance`` numbers."""
    key = (task, image_size, camera, object_shape, instance)
    if key in _CACHE:
        _CACHE[key] = _CACHE.pop(key)  # most recently used last
    else:
        env = make_env(task, image_size, camera, object_shape=object_shape)
        if not _CACHE:
            # The first render registers EGL's own teardown at exit; registering the close after it makes
            # the close run first (atexit is last in, first out), so exit prints no EGL errors.
            env.render()
            atexit.register(close_cached_envs)
        env._harmowam_key = key
        _CACHE[key] = env
    return _CACHE[key]


def evict_cached_envs(keep: int, in_use: Iterable[Any] = ()) -> None:
    """Close the least recently used cached environments, apart from ``in_use``, until ``keep`` are left: each
    holds a rendering context of about 150 MB, and an evaluation process with several episodes in flight
    over many tasks and object shapes would otherwise keep one per combination."""
    busy = {id(env) for env in in_use}
    for key in [k for k, env in _CACHE.items() if id(env) not in busy][:max(0, len(_CACHE) - keep)]:
        _CACHE.pop(key).close()


def close_cached_envs() -> None:
    for env in _CACHE.values():
        env.close()
    _CACHE.clear()


def reset_env(env: Any, seed: int) -> np.ndarray:
    """Reset for ``seed`` and return the first observation, of the scene as it now is.

    Meta-World's reset moves bodies and sites through the model (``model.body("drawer").pos``,
    ``model.site("goal").pos``) after its last forward pass, and it runs ``reset_model`` twice, so
    without a forward pass here the first observation and frame show the first, discarded random
    draw: drawer-open's handle in ``obs[4:7]`` and its drawer drawn centimetres from where it is,
    push's goal marker drawn elsewhere. A forward pass only recomputes positions; the physics that
    follows is unchanged. The observation is then taken again, with itself as the previous frame
    (``obs[18:36]``) as Meta-World's reset does.
    """
    import mujoco

    env.seed(int(seed))
    env.reset()
    mujoco.mj_forward(env.model, env.data)
    env._prev_obs = env._get_curr_obs_combined_no_goal()
    return env._get_obs().astype(np.float64)


def reset_scene(task: str, variation: dict[str, Any], seed: int, image_size: int = DEFAULT_IMAGE_SIZE,
                camera: str = DEFAULT_CAMERA, instance: int = 0) -> tuple[Any, np.ndarray]:
    """The cached environment ``instance`` of ``task`` reset under ``variation`` (SceneVariation keyword arguments)
    for ``seed``; returns it and the first observation. The same seed gives the same scene."""
    from harmowam.sim.variations import SceneVariation

    scene = SceneVariation(**variation)
    env = cached_env(task, image_size, camera, scene.shape_for(task, seed), instance)
    scene.apply(env, np.random.default_rng(seed), (get_task(task).object_body,))
    return env, reset_env(env, seed)


def init_render_process(pool_worker: bool = False) -> None:
    """Set-up of a process that renders (data generation, evaluation). A pool worker ignores Ctrl-C: it reaches
    the whole process group, and the parent handles it and stops its workers."""
    import signal
    import warnings

    if pool_worker:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        # Triton (torch's compiler, imported by diffusers through torch._dynamo) carries its own LLVM; loaded after
        # Mesa's software renderer has loaded its LLVM, the process segfaults. Load it first (0.5 s): an evaluation
        # worker that reads the label registry after its first frame imports diffusers, and died without a word.
        import triton  # noqa: F401
    except ImportError:
        pass
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ["LP_NUM_THREADS"] = "1"  # Mesa's software rasteriser: one thread per process
    warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")


def render(env: Any) -> np.ndarray:
    """The current frame, upright (MuJoCo's offscreen image is upside down).

    Every cached environment has its own OpenGL context, and gymnasium makes an
    environment's context current only when it is created (or when one environment has
    several viewers). Rendering an environment after another one was created drew with
    the other's context: a different, wrong picture (found by tests/test_replay.py; it
    affected every evaluation worker that switched tasks or object shapes). So the
    environment's own context is made current before each frame.
    """
    viewer = getattr(getattr(env, "mujoco_renderer", None), "viewer", None)
    if viewer is not None:
        viewer.make_context_current()
    return np.ascontiguousarray(env.render()[::-1])


def expert_policy(task: str) -> Any:
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[get_task(task).env_name]()
