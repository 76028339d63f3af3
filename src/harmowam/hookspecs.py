"""The hooks through which a package contributes components to harmowam.

A plugin is any module listed under the ``harmowam`` entry-point group. It
implements one or more of the hooks below with :data:`hookimpl`; each returns a
mapping ``{name: constructor}`` (for label strategies ``{name: function}``).
The built-in components register through exactly these hooks (see
:mod:`harmowam.builtins`), so a third-party component is a peer of a built-in one.

Example, in ``my_package/plugin.py``::

    from harmowam.hookspecs import hookimpl

    @hookimpl
    def harmowam_register_experts():
        return {"my_expert": MyExpert}

and in ``pyproject.toml``::

    [project.entry-points.harmowam]
    my_package = "my_package.plugin"
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT_NAME = "harmowam"
ENTRY_POINT_GROUP = "harmowam"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def harmowam_register_world_models() -> dict[str, Callable]:
    """World-model backbones: name -> constructor returning a :class:`~harmowam.world_models.WorldModel`."""


@hookspec
def harmowam_register_experts() -> dict[str, Callable]:
    """Action experts: name -> constructor returning an :class:`~harmowam.experts.ActionExpert`."""


@hookspec
def harmowam_register_gates() -> dict[str, Callable]:
    """Gates that route between experts: name -> constructor returning a :class:`~harmowam.gates.Gate`."""


@hookspec
def harmowam_register_label_strategies() -> dict[str, Callable]:
    """Phase-label strategies: name -> function ``(episode: EpisodeArrays, **options) -> np.ndarray[bool]``.

    The function marks each frame of one episode as interaction (True) or transit (False);
    the process-adaptive gate learns from these labels.
    """


@hookspec
def harmowam_register_instruction_encoders() -> dict[str, Callable]:
    """Instruction encoders: name -> constructor returning an :class:`~harmowam.text.InstructionEncoder`."""
