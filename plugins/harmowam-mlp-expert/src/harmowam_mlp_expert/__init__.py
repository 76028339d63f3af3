"""An example harmowam plugin: a behaviour-cloning MLP expert."""

from harmowam_mlp_expert.mlp_expert import MLPExpert

__all__ = ["MLPExpert"]
