"""Meta-World v3 tasks, scene variations and demonstration generation.

Importing this package does not import Meta-World; :func:`make_env` does, so the
rest of harmowam works without the ``sim`` extra.
"""

from harmowam.sim.tasks import TASKS, TaskSpec, get_task, list_tasks
from harmowam.sim.variations import SceneVariation

__all__ = ["TASKS", "TaskSpec", "get_task", "list_tasks", "SceneVariation"]
