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
    from harmowam.text.transformers_encoder import clip, t5  # transformers is imported only when one is built

    return {"learned": LearnedInstructionEmbedding, "t5": t5, "clip": clip}


@hookimpl
def harmowam_register_experts() -> dict[str, Callable]:
    from harmowam.experts.behavior_cloning import BehaviorCloningExpert
    from harmowam.experts.predictive import PredictiveExpert
    from harmowam.experts.reactive import ReactiveExpert

    return {"predictive": PredictiveExpert, "reactive": ReactiveExpert, "behavior_cloning": BehaviorCloningExpert}


@hookimpl
def harmowam_register_gates() -> dict[str, Callable]:
    from harmowam.gates.fixed import always_predictive, always_reactive, average
    from harmowam.gates.process_adaptive import KeyframeAverageGate, ProcessAdaptiveGate

    return {
        "process_adaptive": ProcessAdaptiveGate,
        "keyframe_average": KeyframeAverageGate,
        "average": average,
        "always_predictive": always_predictive,
        "always_reactive": always_reactive,
    }


@hookimpl
def harmowam_register_label_strategies() -> dict[str, Callable]:
    from harmowam.labels.strategies import ee_height, gripper_events, proximity

    return {"gripper_events": gripper_events, "ee_height": ee_height, "proximity": proximity}
