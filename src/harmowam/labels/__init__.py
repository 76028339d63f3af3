"""Phase-label strategies for the process-adaptive gate."""

from harmowam.labels.strategies import ee_height, gripper_events, interaction_fractions, proximity

__all__ = ["ee_height", "gripper_events", "interaction_fractions", "proximity"]
