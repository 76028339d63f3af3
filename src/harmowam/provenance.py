"""Where a result came from: the command, the code's commit, the package versions, the machine.

Written beside every results table so that a number can be traced to what produced it
and rerun (the complaint most often raised against world-action-model code is that
published numbers cannot be reproduced).
"""

from __future__ import annotations

import datetime
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("harmowam", "torch", "lightning", "diffusers", "timm", "metaworld", "mujoco", "numpy")


def package_versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for pkg in packages:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return versions


def source_commit() -> str | None:
    """The git commit of the harmowam source in use (with ``+dirty`` for uncommitted changes), or None."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def cpu_name() -> str:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    return name or platform.machine()


def provenance(program: str | None = None) -> dict[str, Any]:
    """The record; ``program`` names the command for the arguments in ``sys.argv`` (default: as invoked)."""
    import os

    command = " ".join([program or sys.argv[0], *sys.argv[1:]])
    return {"command": command, "commit": source_commit(), "versions": package_versions(),
            "python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu_name(),
            "cpu_count": os.cpu_count(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
