"""harmowam: World Action Models for robot manipulation.

A video world model (explicit frames, implicit features) conditions pluggable
action experts, and a gate routes between them. Components register through
pluggy entry points; see :mod:`harmowam.registry`.
"""

from harmowam.registry import (
    create_expert,
    create_gate,
    create_instruction_encoder,
    create_world_model,
    get_label_strategy,
    list_experts,
    list_gates,
    list_instruction_encoders,
    list_label_strategies,
    list_world_models,
)

__version__ = "0.1.0"

__all__ = [
    "create_expert", "create_gate", "create_instruction_encoder", "create_world_model", "get_label_strategy",
    "list_experts", "list_gates", "list_instruction_encoders", "list_label_strategies", "list_world_models",
]
