"""Configs that state only what differs: ``base: <file>`` at the top of an experiment YAML.

``lightning fit -c experiments/harmowam.yaml``, where that file begins with
``base: base/stage2.yaml``, reads as ``lightning fit -c experiments/base/stage2.yaml -c
experiments/harmowam.yaml``: LightningCLI reads several config files in order, each over
the ones before it (a mapping merges key by key, a list or a value replaces). A base may
name its own base; the path is relative to the file that names it. So a paradigm config
is its experts and gate, and the shared recipe lives in one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import yaml

CONFIG_FLAGS = ("-c", "--config")


class ConfigBaseError(ValueError):
    """A ``base:`` that names no readable file, or bases that name each other."""


def _base_of(path: Path) -> Path | None:
    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None  # LightningCLI reports an unreadable config itself
    base = content.get("base") if isinstance(content, dict) else None
    if base is None:
        return None
    if not isinstance(base, str):
        raise ConfigBaseError(f"{path}: 'base' must be the path of a config file, got {base!r}")
    resolved = (path.parent / base).resolve()
    if not resolved.is_file():
        raise ConfigBaseError(f"{path}: base config '{base}' not found (looked for {resolved})")
    return resolved


def chain(path: Path) -> list[Path]:
    """``path`` and its bases, the deepest base first."""
    files: list[Path] = []
    current: Path | None = path
    while current is not None:
        if current in files:
            raise ConfigBaseError(f"{path}: config bases form a loop: {' -> '.join(str(f) for f in [*files, current])}")
        files.append(current)
        current = _base_of(current)
    return files[::-1]


def expand_config_bases(argv: Sequence[str]) -> list[str]:
    """``argv`` with every ``-c FILE`` preceded by ``-c BASE`` for each base of FILE.

    After a file with bases comes ``--base=null``: the merged config (``--print_config``, the
    run's saved ``config.yaml``) is complete, so it must not name a base again."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        value = None
        if arg in CONFIG_FLAGS and i + 1 < len(argv):
            value, flag, i = argv[i + 1], arg, i + 2
        elif arg.startswith("--config="):
            value, flag, i = arg.split("=", 1)[1], "--config", i + 1
        else:
            out.append(arg)
            i += 1
            continue
        path = Path(value)
        files = chain(path.resolve()) if path.is_file() else [path]
        for f in files[:-1]:
            out += [flag, str(f)]
        out += [flag, value]
        if len(files) > 1:
            out.append("--base=null")
    return out
