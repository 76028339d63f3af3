"""The six Meta-World v3 tasks of the benchmark, with their instructions."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    name: str  # our short name, as used in configs and data
    env_name: str  # Meta-World's v3 environment id
    instruction: str
    #: hand-to-object distance (m) under which the transit phase counts as reached: about 1.3x the
    #: scripted expert's closest approach (its maximum over 300 episodes), measured from env_state
    transit_distance: float = 0.05
    #: name of the geom group recoloured by the 'object' variation (Meta-World body name)
    object_body: str = "obj"
    #: geom whose shape the 'object' variation can swap (None: the task's object keeps its shape)
    object_geom: str | None = None


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        # closest approach of the expert: push 0.034, pick-place 0.038, plate-slide 0.073,
        # drawer-open 0.016, button-press-topdown 0.049, door-open 0.064 (data/demos + data/wm_video)
        TaskSpec("push", "push-v3", "push the puck to the goal", 0.05, object_geom="objGeom"),
        TaskSpec("pick-place", "pick-place-v3", "pick up the puck and place it at the goal", 0.05,
                 object_geom="objGeom"),
        TaskSpec("plate-slide", "plate-slide-v3", "slide the plate into the goal", 0.095),
        TaskSpec("drawer-open", "drawer-open-v3", "open the drawer", 0.03, object_body="drawer_link"),
        TaskSpec("button-press-topdown", "button-press-topdown-v3", "press the button from the top", 0.065,
                 object_body="button"),
        TaskSpec("door-open", "door-open-v3", "open the door", 0.085, object_body="door_link"),
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
