"""Shared fixtures: a tiny Meta-World dataset, a synthetic dataset writer, a tiny trained world model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = Path(__file__).parent / "configs"


def write_synthetic(path: Path, lengths: list[int], image_size: int = 16, seed: int = 0) -> Path:
    """A dataset in the real format with random contents (for format and window tests)."""
    from harmowam.data.format import EpisodeWriter

    rng = np.random.default_rng(seed)
    writer = EpisodeWriter(path, image_size, {"synthetic": True})
    for i, n in enumerate(lengths):
        writer.add_episode(
            {
                "image": rng.integers(0, 255, (n, image_size, image_size, 3), dtype=np.uint8),
                "state": rng.normal(size=(n, 4)).astype(np.float32),
                "env_state": rng.normal(size=(n, 39)).astype(np.float32),
                "action": rng.uniform(-1, 1, size=(n, 4)).astype(np.float32),
            },
            task="push", instruction="push the puck to the goal", seed=i,
        )
    return writer.close()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real expert demonstrations: 3 episodes each of push and drawer-open at 32x32."""
    from harmowam.sim.generate import GenerationConfig, generate

    out = tmp_path_factory.mktemp("data") / "tiny"
    return generate(out, GenerationConfig(tasks=["push", "drawer-open"], episodes=3, image_size=32, workers=1),
                    progress=False)


def run_cli(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a console script of this project as a user would (same interpreter's bin folder)."""
    exe = Path(sys.executable).parent / args[0]
    return subprocess.run([str(exe), *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def tiny_world_model_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`lightning fit` of the tiny world-model config; returns the run folder."""
    work = tmp_path_factory.mktemp("wm_run")
    (work / "data").mkdir()
    shutil.copytree(tiny_data, work / "data" / "tiny")
    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_world_model.yaml")], cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    (work / "fit_stdout.txt").write_text(res.stdout)
    return work / "runs" / "tiny_world_model" / "version_0"


@pytest.fixture(scope="session")
def tiny_policy_ckpt(tiny_world_model_run: Path) -> Path:
    """`lightning fit` of the tiny stage-2 config on the tiny world model; returns its checkpoint."""
    work = tiny_world_model_run.parents[2]
    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_policy.yaml")], cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    return next((work / "runs" / "tiny_policy").rglob("*.ckpt"))
