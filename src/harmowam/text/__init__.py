"""Instruction encoders: strings in, token embeddings ``[B, L, D]`` out."""

from harmowam.text.instruction_encoder import InstructionEncoder
from harmowam.text.learned_embedding import LearnedInstructionEmbedding

__all__ = ["InstructionEncoder", "LearnedInstructionEmbedding"]
