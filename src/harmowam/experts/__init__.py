"""Action experts: predictive (action diffusion on the world model's latent) and reactive (inverse dynamics)."""

from harmowam.experts.base import ActionExpert, ExpertContext, PolicyShapes, masked_mean
from harmowam.experts.image_encoder import ImageTokenEncoder
from harmowam.experts.predictive import PredictiveExpert
from harmowam.experts.reactive import ReactiveExpert

__all__ = ["ActionExpert", "ExpertContext", "PolicyShapes", "masked_mean", "ImageTokenEncoder",
           "PredictiveExpert", "ReactiveExpert"]
