"""World-model backbones: predicted frames (explicit) and denoiser features (implicit)."""

from harmowam.world_models.base import WorldModel, WorldModelOutput
from harmowam.world_models.latent_flow import LatentVideoWorldModel

__all__ = ["WorldModel", "WorldModelOutput", "LatentVideoWorldModel"]
