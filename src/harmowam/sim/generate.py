"""Demonstrations from Meta-World's scripted experts, written in the episode format.

Each (task, seed) is one job; worker processes keep one environment per task and
return finished episodes, the parent appends the successful ones to the dataset.
Seeds are ``seed + 1_000_003 * task_position + k``: reproducible, and disjoint across
tasks; failed seeds are replaced by the next ones until enough episodes succeed.

``action_noise`` (DART, Laskey et al. 2017): the executed action is the expert's plus
Gaussian noise of that standard deviation (drawn from the episode's seed), while the
stored action is the expert's clean action for the state actually visited. The
demonstrations then cover states slightly off the expert's path, labelled with the
action that recovers from them.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmowam.data.format import EpisodeWriter
from harmowam.sim.env import DEFAULT_CAMERA, expert_policy, render, reset_scene
from harmowam.sim.tasks import get_task, list_tasks
from harmowam.sim.variations import SceneVariation

SEED_STRIDE = 1_000_003

#: named data regimes: the narrow demonstrations and the broad action-free video
PRESETS: dict[str, dict[str, Any]] = {
    "demos": {"variation": {"position_scale": 0.5}, "episodes": 50, "seed": 0},
    "wm_video": {"variation": {"background": "train", "object_color": "train", "object_shape": "train",
                               "position_scale": 1.0},
                 "episodes": 50, "seed": 500_000},
}


@dataclass
class GenerationConfig:
    tasks: list[str] = field(default_factory=list_tasks)
    episodes: int = 50  # successful episodes per task
    seed: int = 0
    image_size: int = 64
    camera: str = DEFAULT_CAMERA
    max_steps: int = 200
    variation: SceneVariation = field(default_factory=SceneVariation)
    workers: int = 2
    action_noise: float = 0.0  # std of Gaussian noise on the executed action (DART); stored actions stay clean

    def __post_init__(self) -> None:
        for t in self.tasks:
            get_task(t)  # unknown task -> error listing the tasks
        if self.episodes <= 0:
            raise ValueError(f"episodes must be positive, got {self.episodes}")
        if not 0.0 <= self.action_noise <= 1.0:
            raise ValueError(f"action_noise must be in [0, 1], got {self.action_noise}")


class ActionNoise:
    """The DART perturbation of an episode: Gaussian noise of std ``sigma``, drawn from the episode's seed, so
    that a stored episode's executed actions can be rebuilt from its seed and clean actions."""

    def __init__(self, seed: int, sigma: float) -> None:
        self.sigma, self.rng = sigma, np.random.default_rng([seed, 0xDA27])

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if self.sigma <= 0:
            return action
        return np.clip(action + self.rng.normal(0.0, self.sigma, size=action.shape), -1, 1).astype(np.float32)


def run_episode(task: str, seed: int, image_size: int, camera: str, max_steps: int,
                variation: dict[str, Any], action_noise: float = 0.0) -> dict[str, Any]:
    """Roll out the scripted expert once; returns arrays and whether it succeeded."""
    policy = expert_policy(task)
    env, obs = reset_scene(task, variation, seed, image_size, camera)
    perturb = ActionNoise(seed, action_noise)
    images, states, env_states, actions = [], [], [], []
    success = False
    for _ in range(max_steps):
        action = np.clip(policy.get_action(obs), -1, 1).astype(np.float32)
        images.append(render(env))
        states.append(obs[:4])
        env_states.append(obs[:39])
        actions.append(action)
        obs, _, _, _, info = env.step(perturb(action))
        if info.get("success", 0.0) >= 1.0:
            success = True
            break
    return {
        "task": task, "seed": seed, "success": success,
        "arrays": {"image": np.stack(images), "state": np.stack(states), "env_state": np.stack(env_states),
                   "action": np.stack(actions)},
    }


def _job(args: tuple) -> dict[str, Any]:
    return run_episode(*args)


def _init_worker() -> None:
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ["LP_NUM_THREADS"] = "1"  # Mesa's software rasteriser: one thread per process
    import warnings

    warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")


def generation_metadata(cfg: GenerationConfig, preset: str | None) -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for pkg in ("harmowam", "metaworld", "mujoco", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {
        "preset": preset, "tasks": cfg.tasks, "episodes_per_task": cfg.episodes, "seed": cfg.seed,
        "image_size": cfg.image_size, "camera": cfg.camera, "max_steps": cfg.max_steps,
        "variation": cfg.variation.to_dict(), "action_noise": cfg.action_noise, "seed_stride": SEED_STRIDE,
        "versions": versions,
        "python": sys.version.split()[0], "platform": platform.platform(), "command": " ".join(sys.argv),
    }


def generate(out: str | Path, cfg: GenerationConfig, overwrite: bool = False, preset: str | None = None,
             progress: bool = True) -> Path:
    """Generate ``cfg.episodes`` successful expert episodes per task into the folder ``out``."""
    from harmowam.progress import progress_bar

    writer = EpisodeWriter(out, cfg.image_size, generation_metadata(cfg, preset), overwrite=overwrite)
    variation = cfg.variation.to_dict()
    total = cfg.episodes * len(cfg.tasks)
    bar = progress_bar(total, f"generating {Path(out).name}", "ep", disable=not progress)
    failures: dict[str, int] = {t: 0 for t in cfg.tasks}
    next_k = {t: 0 for t in cfg.tasks}
    done = {t: 0 for t in cfg.tasks}
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(cfg.workers, initializer=_init_worker) if cfg.workers > 1 else None
    try:
        while any(done[t] < cfg.episodes for t in cfg.tasks):
            jobs = []
            for t in cfg.tasks:
                for _ in range(cfg.episodes - done[t]):
                    seed = cfg.seed + SEED_STRIDE * list_tasks().index(t) + next_k[t]
                    next_k[t] += 1
                    jobs.append((t, seed, cfg.image_size, cfg.camera, cfg.max_steps, variation, cfg.action_noise))
            if any(next_k[t] > 3 * cfg.episodes + 10 for t in cfg.tasks):
                raise RuntimeError(f"the scripted expert keeps failing: failures per task {failures}")
            if pool is None:
                _init_worker()
            results = pool.imap(_job, jobs) if pool is not None else map(_job, jobs)
            for res in results:  # imap keeps job order, so the dataset order is reproducible
                t = res["task"]
                if res["success"] and done[t] < cfg.episodes:
                    writer.add_episode(res["arrays"], t, get_task(t).instruction, res["seed"])
                    done[t] += 1
                    bar.update(1)
                elif not res["success"]:
                    failures[t] += 1
                bar.set_postfix(failed=sum(failures.values()))
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        bar.close()
    writer.generation["failed_seeds_per_task"] = failures
    return writer.close()
