"""Evaluation suites: tasks x conditions, each condition a scene variation, with evaluation seeds.

The conditions of ``metaworld6`` are defined against the two data regimes of
:data:`harmowam.sim.generate.PRESETS`, so that they cannot drift apart:

- ``in_domain``: the ``demos`` regime (default scene, central half of the position range);
- ``background``: table, floor and wall colours from the ``test`` palette, which neither
  regime uses;
- ``position``: object (or goal) positions outside the demonstrations' central range but
  inside the whole range that the ``wm_video`` regime covers;
- ``object``: object colours from the ``test`` palette, and for the puck tasks (push,
  pick-place) a shape from the ``test`` shape palette (a cube; the video has pucks and
  spheres): neither shape nor colour is in any training data.

Seeds are paired across conditions: episode *k* of a task has the same seed under
every condition, so a condition's drop from in-domain compares like with like. They
start at :data:`EVAL_SEED_BASE`, far above any seed the data presets use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harmowam.sim.generate import PRESETS, SEED_STRIDE
from harmowam.sim.tasks import list_tasks

#: evaluation seeds start here; data generation uses preset seed + SEED_STRIDE * task + k, far below
EVAL_SEED_BASE = 1_000_000_000
#: at most this many evaluation episodes per task (keeps the seeds of two tasks apart)
MAX_EPISODES = 100_000
IN_DOMAIN = "in_domain"


@dataclass(frozen=True)
class Condition:
    name: str
    description: str
    #: SceneVariation keyword arguments; a shape applies only to tasks with a swappable object
    variation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    conditions: dict[str, Condition]
    max_steps: int = 200
    state_dim: int = 4  # hand xyz, gripper opening
    action_dim: int = 4  # xyz displacement, gripper effort

    def episode_seed(self, task: str, episode: int) -> int:
        """The seed of evaluation episode ``episode`` of ``task``: the same under every condition."""
        if not 0 <= episode < MAX_EPISODES:
            raise ValueError(f"episode index must be in [0, {MAX_EPISODES}), got {episode}")
        return EVAL_SEED_BASE + SEED_STRIDE * list_tasks().index(task) + episode

    def select_tasks(self, tasks: str | list[str] | None) -> list[str]:
        """``'all'``/None, a comma-separated string or a list; an unknown task names the suite's tasks."""
        return _select(tasks, list(self.tasks), f"task of suite '{self.name}'")

    def select_conditions(self, conditions: str | list[str] | None) -> list[str]:
        return _select(conditions, list(self.conditions), f"condition of suite '{self.name}'")

    @property
    def ood_conditions(self) -> list[str]:
        return [c for c in self.conditions if c != IN_DOMAIN]


def _select(value: str | list[str] | None, known: list[str], what: str) -> list[str]:
    if value is None or value == "all" or value == ["all"]:
        return known
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown {what}: {', '.join(unknown) or '(none given)'}. Choose from: {', '.join(known)}, or all")
    return names


def _metaworld6() -> Suite:
    demos = dict(PRESETS["demos"]["variation"])
    demo_scale = demos.get("position_scale", 1.0)
    return Suite(
        name="metaworld6",
        tasks=("push", "pick-place", "plate-slide", "drawer-open", "button-press-topdown", "door-open"),
        conditions={
            IN_DOMAIN: Condition(IN_DOMAIN, "the demonstrations' distribution", demos),
            "background": Condition("background", "table, floor and wall colours from the unseen 'test' palette",
                                    {**demos, "background": "test"}),
            "position": Condition("position", "positions outside the demonstrations' range, inside the video's",
                                  {"position_scale": PRESETS["wm_video"]["variation"]["position_scale"],
                                   "position_exclude": demo_scale}),
            "object": Condition("object", "an unseen object colour; a cube instead of the puck where there is one",
                                {**demos, "object_color": "test", "object_shape": "test"}),
        },
    )


SUITES: dict[str, Suite] = {"metaworld6": _metaworld6()}


def list_suites() -> list[str]:
    return list(SUITES)


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise ValueError(f"unknown suite '{name}'. Suites: {', '.join(SUITES)}")
    return SUITES[name]
