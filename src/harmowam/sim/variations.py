"""Scene variations: background colours, object colour and shape, and object position range.

Colours are changed at run time on the compiled model (``geom_rgba`` with the
material unset), positions by replacing the environment's reset box, so one
environment serves every episode of a variation. A shape change needs a model
compiled from an edited ``MjSpec``: it is applied when the environment is built
(:func:`harmowam.sim.env.make_env`). Named palettes keep the training and
evaluation colours disjoint: ``train`` for the broad video the world model sees,
``test`` for colours that appear in no training data at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# RGBA palettes. 'train' and 'test' share no colour.
PALETTES: dict[str, list[tuple[float, float, float, float]]] = {
    "train": [
        (0.55, 0.35, 0.20, 1), (0.30, 0.45, 0.30, 1), (0.45, 0.45, 0.55, 1), (0.70, 0.65, 0.50, 1),
        (0.25, 0.30, 0.45, 1), (0.60, 0.30, 0.30, 1), (0.40, 0.40, 0.40, 1), (0.75, 0.75, 0.70, 1),
    ],
    "test": [
        (0.10, 0.60, 0.65, 1), (0.85, 0.55, 0.10, 1), (0.55, 0.15, 0.60, 1), (0.90, 0.90, 0.25, 1),
    ],
}
OBJECT_PALETTES: dict[str, list[tuple[float, float, float, float]]] = {
    "train": [(0.2, 0.7, 0.2, 1), (0.9, 0.9, 0.9, 1), (0.9, 0.5, 0.1, 1)],
    "test": [(0.1, 0.2, 0.9, 1), (0.95, 0.85, 0.1, 1)],
}

#: object shapes for the tasks whose object geom can be swapped (TaskSpec.object_geom):
#: MuJoCo geom type and size. The default puck is a cylinder of radius 0.02, half-height 0.02.
OBJECT_SHAPES: dict[str, tuple[str, tuple[float, float, float]]] = {
    "cube": ("box", (0.02, 0.02, 0.02)),
    "sphere": ("sphere", (0.022, 0.0, 0.0)),
}
#: shape palettes, like the colour palettes: None is the task's own object. 'train' and 'test' share no shape.
OBJECT_SHAPE_PALETTES: dict[str, tuple[str | None, ...]] = {"train": (None, "sphere"), "test": ("cube",)}

BACKGROUND_BODIES = ("tablelink", "RetainingWall")
BACKGROUND_GEOMS = ("floor",)


@dataclass
class SceneVariation:
    """How a scene differs from Meta-World's default; every field's default is 'unchanged'.

    ``background`` and ``object_color`` name a palette (``train`` or ``test``): each
    episode draws its colours from it with the episode's seed. ``object_shape`` names an
    entry of :data:`OBJECT_SHAPES` or a palette of :data:`OBJECT_SHAPE_PALETTES` (drawn per
    episode); it applies to tasks with a swappable object geom and is ignored by the others.
    A shape is build-time: :meth:`shape_for` says which environment an episode needs.
    ``position_scale`` scales the random reset box (object and goal) about its centre;
    ``position_offset`` shifts the object's x and y (metres). ``position_exclude`` keeps
    the first varying coordinate of the reset vector (the object's x, or the goal's where
    the object is fixed) outside the central ``position_exclude`` fraction of its range,
    on a side drawn per episode: positions the narrow demonstrations never had.
    """

    background: str | None = None
    object_color: str | None = None
    object_shape: str | None = None
    position_scale: float = 1.0
    position_offset: tuple[float, float] = (0.0, 0.0)
    position_exclude: float | None = None

    def __post_init__(self) -> None:
        for key, palettes in (("background", PALETTES), ("object_color", OBJECT_PALETTES),
                              ("object_shape", {**OBJECT_SHAPES, **OBJECT_SHAPE_PALETTES})):
            value = getattr(self, key)
            if value is not None and value not in palettes:
                raise ValueError(f"unknown {key} '{value}'. Choose from: {', '.join(palettes)}")
        if self.position_scale <= 0:
            raise ValueError(f"position_scale must be positive, got {self.position_scale}")
        if self.position_exclude is not None and not 0 < self.position_exclude < 1:
            raise ValueError(f"position_exclude must be in (0, 1), got {self.position_exclude}")
        self.position_offset = tuple(float(v) for v in self.position_offset)  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def shape_for(self, task: str, seed: int) -> str | None:
        """The object shape of episode ``seed`` of ``task`` (None: the task's own object)."""
        from harmowam.sim.tasks import get_task

        if self.object_shape is None or get_task(task).object_geom is None:
            return None
        if self.object_shape in OBJECT_SHAPE_PALETTES:
            choices = OBJECT_SHAPE_PALETTES[self.object_shape]
            # its own stream, so that adding shapes leaves the colour draws of apply() unchanged
            return choices[np.random.default_rng([seed, 1]).integers(len(choices))]
        return self.object_shape

    # -- application ------------------------------------------------------------------------
    def apply(self, env: Any, rng: np.random.Generator, task_object_bodies: tuple[str, ...] = ()) -> None:
        """Change ``env`` (built by :func:`~harmowam.sim.env.make_env`) for the next reset; call before
        ``env.reset()``. Whatever an earlier variation changed is restored first."""
        model, defaults = env.model, env._harmowam_defaults
        model.geom_rgba[:] = defaults["geom_rgba"]
        model.geom_matid[:] = defaults["geom_matid"]
        if self.background is not None:
            colours = PALETTES[self.background]
            for geom_ids in (_geoms_of_bodies(model, BACKGROUND_BODIES), _named_geoms(model, BACKGROUND_GEOMS)):
                _recolour(model, geom_ids, colours[rng.integers(len(colours))])
        if self.object_color is not None:
            colours = OBJECT_PALETTES[self.object_color]
            _recolour(model, _geoms_of_bodies(model, task_object_bodies, subtree=True), colours[rng.integers(len(colours))])
        self._apply_positions(env, rng)

    def _apply_positions(self, env: Any, rng: np.random.Generator) -> None:
        from gymnasium.spaces import Box

        space, goal_space = env._harmowam_defaults["reset_space"], env._harmowam_defaults["goal_space"]
        env._random_reset_space, env.goal_space = space, goal_space
        if self.position_scale == 1.0 and self.position_offset == (0.0, 0.0) and self.position_exclude is None:
            return
        centre = (space.low + space.high) / 2
        half = (space.high - space.low) / 2 * self.position_scale
        low, high = centre - half, centre + half
        low[:2] += self.position_offset
        high[:2] += self.position_offset
        if self.position_exclude is not None:
            d = int(np.flatnonzero(high - low > 1e-9)[0])  # the first coordinate that varies
            inner = (high[d] - low[d]) / 2 * self.position_exclude
            c = (low[d] + high[d]) / 2
            if rng.integers(2):
                low[d] = c + inner
            else:
                high[d] = c - inner
        env._random_reset_space = Box(low, high, dtype=np.float64)
        # Widen the goal space too, or the goal in the observation is clipped to it.
        if goal_space is not None:
            n = goal_space.low.shape[0]
            g_low = np.minimum(goal_space.low, low[-n:]) - 0.3
            g_high = np.maximum(goal_space.high, high[-n:]) + 0.3
            env.goal_space = Box(g_low, g_high, dtype=np.float64)


def _geoms_of_bodies(model: Any, bodies: tuple[str, ...], subtree: bool = False) -> list[int]:
    import mujoco

    body_ids = set()
    for name in bodies:
        bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        if bid >= 0:
            body_ids.add(bid)
    if subtree:
        changed = True
        while changed:
            before = len(body_ids)
            body_ids |= {b for b in range(model.nbody) if model.body_parentid[b] in body_ids}
            changed = len(body_ids) != before
    return [g for g in range(model.ngeom) if model.geom_bodyid[g] in body_ids]


def _named_geoms(model: Any, names: tuple[str, ...]) -> list[int]:
    import mujoco

    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in names]
    return [i for i in ids if i >= 0]


def _recolour(model: Any, geom_ids: list[int], rgba: tuple[float, ...]) -> None:
    for g in geom_ids:
        if model.geom_rgba[g][3] == 0:  # invisible collision geoms stay invisible
            continue
        model.geom_matid[g] = -1
        model.geom_rgba[g] = rgba
