"""Load a trained world model from a stage-1 Lightning checkpoint or a ``save_pretrained`` folder."""

from __future__ import annotations

import json
from pathlib import Path

from harmowam.registry import REGISTRY
from harmowam.world_models.base import WorldModel


def load_world_model(path: str | Path) -> WorldModel:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"world model '{path}' does not exist: give a stage-1 checkpoint (.ckpt) "
                                "or a folder written by save_pretrained")
    if path.is_dir():
        config = path / "world_model.json"
        if not config.is_file():
            raise FileNotFoundError(f"{config}: '{path}' is a folder but not a saved world model")
        name = json.loads(config.read_text()).get("class", "latent_flow")
        return REGISTRY.get("world_model", name).constructor.from_pretrained(path)
    from harmowam.safe_load import load_lightning_module
    from harmowam.world_model_module import WorldModelModule

    return load_lightning_module(WorldModelModule, path, map_location="cpu").world_model
