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

import json
import multiprocessing as mp
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmowam.data.format import EpisodeWriter
from harmowam.files import FolderLock
from harmowam.sim.env import DEFAULT_CAMERA, DEFAULT_IMAGE_SIZE, expert_policy, init_render_process, render, reset_scene
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
    image_size: int = DEFAULT_IMAGE_SIZE
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


def generation_metadata(cfg: GenerationConfig, preset: str | None) -> dict[str, Any]:
    from harmowam.provenance import package_versions

    versions = package_versions(("harmowam", "metaworld", "mujoco", "numpy"))
    return {
        "preset": preset, "tasks": cfg.tasks, "episodes_per_task": cfg.episodes, "seed": cfg.seed,
        "image_size": cfg.image_size, "camera": cfg.camera, "max_steps": cfg.max_steps,
        "variation": cfg.variation.to_dict(), "action_noise": cfg.action_noise, "seed_stride": SEED_STRIDE,
        "versions": versions,
        "python": sys.version.split()[0], "platform": platform.platform(), "command": " ".join(sys.argv),
    }


SETTINGS = ("preset", "tasks", "episodes_per_task", "seed", "image_size", "camera", "max_steps", "variation",
            "action_noise", "seed_stride")  # what must match for a rerun to continue a killed generation


def generate(out: str | Path, cfg: GenerationConfig, overwrite: bool = False, preset: str | None = None,
             progress: bool = True) -> Path:
    """Generate ``cfg.episodes`` successful expert episodes per task into the folder ``out``.

    Finished episodes are recorded as they finish; rerunning after a kill or Ctrl-C continues
    where it stopped (same settings), and gives the dataset an uninterrupted run gives."""
    generation = generation_metadata(cfg, preset)
    settings = json.loads(json.dumps({k: generation.get(k) for k in SETTINGS}))  # as the progress file holds them
    with FolderLock(out, "harmowam data generate"):
        writer = EpisodeWriter(out, cfg.image_size, generation, overwrite=overwrite, resume=True,
                               same_run=lambda g: all(g.get(k) == v for k, v in settings.items()))
        return _generate(writer, cfg, progress, Path(out).name)


def _generate(writer: EpisodeWriter, cfg: GenerationConfig, progress: bool, label: str) -> Path:
    from harmowam.progress import progress_bar

    variation = cfg.variation.to_dict()
    total = cfg.episodes * len(cfg.tasks)
    done = {t: writer.counts.get(t, 0) for t in cfg.tasks}
    failures = {t: 0 for t in cfg.tasks}  # of this run: a resumed generation counts only its own
    base = {t: cfg.seed + SEED_STRIDE * list_tasks().index(t) for t in cfg.tasks}
    next_k = {t: 1 + max((e["seed"] - base[t] for e in writer.episodes if e["task"] == t), default=-1)
              for t in cfg.tasks}  # seeds continue after the last kept episode of each task
    if writer.episodes:
        print(f"[data] {writer.path}: continuing an unfinished generation, {len(writer.episodes)} of {total} "
              "episodes kept", flush=True)
    bar = progress_bar(total, f"generating {label}", "ep", disable=not progress)
    bar.update(sum(done.values()))
    ctx = mp.get_context("spawn")
    pool = ctx.Pool(cfg.workers, initializer=init_render_process, initargs=(True,)) if cfg.workers > 1 else None
    finished = False
    try:
        while any(done[t] < cfg.episodes for t in cfg.tasks):
            jobs = []
            for t in cfg.tasks:
                for _ in range(cfg.episodes - done[t]):
                    jobs.append((t, base[t] + next_k[t], cfg.image_size, cfg.camera, cfg.max_steps, variation,
                                 cfg.action_noise))
                    next_k[t] += 1
            if any(next_k[t] > 3 * cfg.episodes + 10 for t in cfg.tasks):
                raise RuntimeError(f"the scripted expert keeps failing: failures per task {failures}")
            if pool is None:
                init_render_process()
            results = pool.imap(_job, jobs) if pool is not None else map(_job, jobs)
            for res in results:  # imap keeps job order, so the dataset order is reproducible
                t = res["task"]
                if res["success"] and done[t] < cfg.episodes:
                    writer.add_episode(res["arrays"], t, get_task(t).instruction, res["seed"])
                    done[t] += 1
                    bar.update(1)
                elif not res["success"]:
                    failures[t] += 1
                bar.set_postfix(failed=sum(failures.values()), refresh=False)  # redrawn at the bar's own interval
        finished = True
    finally:
        if pool is not None:
            if finished:
                pool.close()
            else:
                pool.terminate()  # Ctrl-C or an error: stop the workers now; finished episodes are recorded
            pool.join()
        bar.close()
    writer.generation["failed_seeds_per_task"] = failures
    return writer.close()
