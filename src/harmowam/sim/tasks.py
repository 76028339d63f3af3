"""The six Meta-World v3 tasks of the benchmark, with their instructions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    name: str  # our short name, as used in configs and data
    env_name: str  # Meta-World's v3 environment id
    instruction: str
    #: hand-to-site distance (m) under which the transit phase counts as reached
    transit_distance: float = 0.05
    #: name of the geom group recoloured by the 'object' variation (Meta-World body name)
    object_body: str = "obj"


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        TaskSpec("push", "push-v3", "push the puck to the goal"),
        TaskSpec("pick-place", "pick-place-v3", "pick up the puck and place it at the goal"),
        TaskSpec("plate-slide", "plate-slide-v3", "slide the plate into the goal"),
        TaskSpec("drawer-open", "drawer-open-v3", "open the drawer", object_body="drawer_link"),
        TaskSpec("button-press-topdown", "button-press-topdown-v3", "press the button from the top", object_body="button"),
        TaskSpec("door-open", "door-open-v3", "open the door", object_body="door_link"),
    ]
}


def list_tasks() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise KeyError(f"unknown task '{name}'. Tasks: {', '.join(TASKS)}")
    return TASKS[name]


def instructions() -> list[str]:
    """The instruction strings of all tasks, in a fixed order (the default vocabulary)."""
    return [t.instruction for t in TASKS.values()]
