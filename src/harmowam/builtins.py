"""The built-in components, registered through the same entry point as any plugin.

See ``[project.entry-points.harmowam]`` in pyproject.toml.
"""

from __future__ import annotations

from typing import Callable

from harmowam.hookspecs import hookimpl


@hookimpl
def harmowam_register_world_models() -> dict[str, Callable]:
    from harmowam.world_models.latent_flow import LatentVideoWorldModel

    return {"latent_flow": LatentVideoWorldModel}


@hookimpl
def harmowam_register_instruction_encoders() -> dict[str, Callable]:
    from harmowam.text.learned_embedding import LearnedInstructionEmbedding

    return {"learned": LearnedInstructionEmbedding}
