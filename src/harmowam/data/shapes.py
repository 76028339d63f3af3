"""What a model must know of its data before it is built: image size, state and action widths, instructions.

Meta-World data is 64 px with 4-D state and action; an imported robot dataset is not.
Rather than asking every config to repeat the data's sizes (and to be edited when the
data changes), the ``lightning`` command reads them from the data folders' ``meta.json``
and fills the model's settings that the config leaves unset (:func:`fill_model_args`).
A size the config does set is checked against the data when training starts, with an
error that names the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harmowam.data.format import DatasetError, EpisodeStore


@dataclass(frozen=True)
class DataShapes:
    image_size: int  # frames are square, this side in pixels
    state_dim: int
    action_dim: int
    instructions: tuple[str, ...]  # every instruction in the data, sorted


def data_shapes(stores: Sequence[EpisodeStore]) -> DataShapes:
    """The shapes shared by all ``stores``; folders that disagree raise an error naming both."""
    first = stores[0]
    h, w = first.image_size
    if h != w:
        raise DatasetError(f"{first.path}: frames are {h}x{w}; the models take square frames "
                           "(import with --image-size to resize)")
    shapes = DataShapes(h, first.dim("state"), first.dim("action"),
                        tuple(sorted({i for s in stores for i in s.instructions})))
    for store in stores[1:]:
        other = (store.image_size, store.dim("state"), store.dim("action"))
        if other != ((h, w), shapes.state_dim, shapes.action_dim):
            raise DatasetError(f"{store.path} holds {other[0][0]}x{other[0][1]} frames, state {other[1]}, action "
                               f"{other[2]}, but {first.path} holds {h}x{w}, {shapes.state_dim}, {shapes.action_dim}: "
                               "data folders trained together must agree")
    return shapes


def read_data_shapes(data_dirs: Sequence[str | Path] | str | Path) -> DataShapes:
    dirs = [data_dirs] if isinstance(data_dirs, (str, Path)) else list(data_dirs)
    return data_shapes([EpisodeStore(d, check_values=False) for d in dirs])


def _fill_vocabulary(encoder: Any, instructions: tuple[str, ...]) -> Any:
    """A learned instruction embedding without a vocabulary gets the data's instructions."""
    if encoder in (None, "learned"):
        return {"name": "learned", "vocabulary": list(instructions)}
    if isinstance(encoder, dict) and encoder.get("name") == "learned" and encoder.get("vocabulary") is None:
        return {**encoder, "vocabulary": list(instructions)}
    return encoder


def fill_model_args(init_args: dict[str, Any], shapes: DataShapes) -> dict[str, Any]:
    """The model's ``init_args`` with every data-given setting the config left unset filled in.

    Works on the policy module (``action_dim``, ``state_dim``, ``instruction_encoder``, and ``image_size`` when
    it has no world model, whose frame side it takes otherwise) and on the world-model module (its
    ``world_model`` spec's ``image_size`` and instruction encoder).
    """
    args = dict(init_args)
    for key, value in (("action_dim", shapes.action_dim), ("state_dim", shapes.state_dim)):
        if key in args and args[key] is None:
            args[key] = value
    if "image_size" in args and args["image_size"] is None and not args.get("world_model"):
        args["image_size"] = shapes.image_size  # a policy without a world model (behaviour cloning)
    if "instruction_encoder" in args:
        args["instruction_encoder"] = _fill_vocabulary(args["instruction_encoder"], shapes.instructions)
    spec = args.get("world_model")
    if "vae_steps" in args and spec is not None:  # the world-model stage builds its world model here
        spec = {"name": spec} if isinstance(spec, str) else dict(spec)
        if spec.get("name") != "latent_flow":
            return args  # another backbone's settings are its own
        spec.setdefault("image_size", shapes.image_size)
        spec["instruction_encoder"] = _fill_vocabulary(spec.get("instruction_encoder"), shapes.instructions)
        args["world_model"] = spec
    return args
