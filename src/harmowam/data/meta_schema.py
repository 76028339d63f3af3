"""Type checks for a dataset's ``meta.json``: every field, with the file and key named.

JSON from a hand-edited or foreign file can put a string where a number belongs, or a
number where a list does; coercing such values hides the mistake until training breaks
far from its cause. :func:`validate_meta` rejects them when the dataset is opened.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

STAT_NAMES = ("mean", "std", "min", "max")


def _type_name(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


class _Checker:
    def __init__(self, path: Path, error: type[Exception]) -> None:
        self.path, self.error = path, error

    def fail(self, key: str, what: str, value: Any) -> None:
        raise self.error(f"{self.path}: '{key}' must be {what}, got {_type_name(value)}")

    def integer(self, key: str, value: Any, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "an integer", value)
        if minimum is not None and value < minimum:
            self.fail(key, f"an integer >= {minimum}", value)
        return value

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            self.fail(key, "a non-empty string", value)
        return value

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, "an object", value)
        return value

    def sequence(self, key: str, value: Any) -> list[Any]:
        if not isinstance(value, list):
            self.fail(key, "a list", value)
        return value

    def numbers(self, key: str, value: Any, length: int) -> None:
        self.sequence(key, value)
        if len(value) != length:
            self.fail(key, f"a list of {length} numbers", value)
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                self.fail(f"{key}[{i}]", "a finite number", v)


def validate_meta(meta: Any, path: Path, schema: dict[str, tuple[str, int]], required: tuple[str, ...],
                  error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming ``path`` and the key of the first field that does not match the format.

    ``schema`` maps each key a dataset may hold to ``(dtype, number of per-frame dimensions)``;
    ``required`` are the keys every dataset holds."""
    c = _Checker(path, error)
    c.mapping("(top level)", meta)
    for top in ("num_frames", "keys", "episodes", "stats"):
        if top not in meta:
            raise error(f"{path}: missing key '{top}'")
    c.integer("num_frames", meta["num_frames"], minimum=0)
    if "version" in meta:
        c.integer("version", meta["version"], minimum=1)
    keys = c.mapping("keys", meta["keys"])
    for key in required:
        if key not in keys:
            raise error(f"{path}: missing key 'keys.{key}' (a dataset holds {', '.join(required)}, "
                        f"and optionally {', '.join(k for k in schema if k not in required)})")
    per_frame: dict[str, int] = {}
    for key in keys:
        if key not in schema:
            raise error(f"{path}: unknown key 'keys.{key}'; keys are {', '.join(schema)}")
        dtype, ndim = schema[key]
        spec = c.mapping(f"keys.{key}", keys[key])
        if spec.get("dtype", dtype) != dtype:
            c.fail(f"keys.{key}.dtype", f"'{dtype}'", spec["dtype"])
        shape = c.sequence(f"keys.{key}.shape", spec.get("shape"))
        for i, n in enumerate(shape):
            c.integer(f"keys.{key}.shape[{i}]", n, minimum=1)
        if len(shape) != ndim:
            c.fail(f"keys.{key}.shape", f"a list of {ndim} sizes", shape)
        if key == "image" and shape[2] != 3:
            c.fail("keys.image.shape", "[height, width, 3]", shape)
        if "file" in spec:
            name = c.string(f"keys.{key}.file", spec["file"])
            if Path(name).name != name:
                c.fail(f"keys.{key}.file", "a file name inside the dataset folder", name)
        per_frame[key] = math.prod(shape)
    for i, ep in enumerate(c.sequence("episodes", meta["episodes"])):
        c.mapping(f"episodes[{i}]", ep)
        for field in ("task", "instruction", "start", "length"):
            if field not in ep:
                raise error(f"{path}: missing key 'episodes[{i}].{field}'")
        c.string(f"episodes[{i}].task", ep["task"])
        c.string(f"episodes[{i}].instruction", ep["instruction"])
        c.integer(f"episodes[{i}].start", ep["start"], minimum=0)
        c.integer(f"episodes[{i}].length", ep["length"], minimum=1)
        if "seed" in ep:
            c.integer(f"episodes[{i}].seed", ep["seed"])
    if not meta["episodes"]:
        raise error(f"{path}: the dataset is empty (no episodes)")
    stats = c.mapping("stats", meta["stats"])
    for key in (k for k in keys if schema[k][0].startswith("float")):
        if key not in stats:
            raise error(f"{path}: missing normalisation statistics 'stats.{key}'")
        entry = c.mapping(f"stats.{key}", stats[key])
        for name in STAT_NAMES:
            if name not in entry:
                raise error(f"{path}: missing key 'stats.{key}.{name}'")
            c.numbers(f"stats.{key}.{name}", entry[name], per_frame[key])
    if "generation" in meta:
        c.mapping("generation", meta["generation"])
