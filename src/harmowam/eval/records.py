"""The episode log of an evaluation: one JSON line per finished episode, appended at once.

A rerun reads the log and skips the episodes in it, so a crash or Ctrl-C loses only
the episodes in flight. A line cut short by a kill is dropped on reopening (it was
an unfinished write); every complete line is kept. ``eval.json`` beside the log
records what each policy name stands for (the checkpoint's digest, the suite, the
step limit): resuming into a folder that holds another evaluation is an error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from harmowam.files import write_text_atomic

Key = tuple[str, str, str, int]  # policy, task, condition, episode


def record_key(record: dict[str, Any]) -> Key:
    return record["policy"], record["task"], record["condition"], int(record["episode"])


class EpisodeLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_partial_line()

    def _drop_partial_line(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        with open(self.path) as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{self.path}, line {n}: not a JSON record ({exc})") from exc

    def finished(self) -> dict[Key, dict[str, Any]]:
        return {record_key(r): r for r in self}

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def check_manifest(path: str | Path, manifest: dict[str, Any]) -> None:
    """Write ``eval.json``, or check that the one there describes the same evaluation.

    ``manifest`` = {"suite", "max_steps", "camera", "policies": {name: fingerprint}}. New
    policy names are added; a name that now stands for something else is an error.
    """
    path = Path(path)
    if path.is_file():
        old = json.loads(path.read_text())
        for key in ("suite", "max_steps", "camera", "image_size"):
            if old.get(key) != manifest[key]:
                raise ValueError(f"{path} holds an evaluation with {key}={old.get(key)!r}, this one has "
                                 f"{manifest[key]!r}: use another --out folder")
        for name, fingerprint in manifest["policies"].items():
            before = old.get("policies", {}).get(name)
            if before is not None and before != fingerprint:
                changed = sorted(k for k in set(before) | set(fingerprint) if before.get(k) != fingerprint.get(k))
                raise ValueError(f"{path}: policy '{name}' was evaluated with different {', '.join(changed)}; "
                                 "use another --out folder or --name")
        manifest = {**old, "policies": {**old.get("policies", {}), **manifest["policies"]}}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(manifest, indent=1))
