"""One closed-loop episode: scene variation, seeded reset, policy in the loop, phase metrics.

:class:`Rollout` holds an episode's environment side (it lives in an evaluation
worker, beside the environment), and the policy acts from outside it, so that one
policy call can serve many rollouts. Rendering happens only when the policy reads
images or a video is recorded, and is timed with the physics as environment time;
the policy's share of inference time is passed in with each action, so steps per
second can be reported with and without it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from harmowam.eval.pictures import gate_timeline, write_video
from harmowam.eval.policies import EvalPolicy
from harmowam.sim.env import DEFAULT_CAMERA, DEFAULT_IMAGE_SIZE, render, reset_scene
from harmowam.sim.tasks import get_task


class Rollout:
    """The environment side of one episode: ``observation()``, then ``step(action, expert, policy_time)``
    until ``done``, then ``record()``. Rollouts in flight together in one process need distinct ``instance``
    numbers (each gets its own cached environment)."""

    def __init__(self, policy_name: str, task: str, condition: str, variation: dict[str, Any], episode: int,
                 seed: int, max_steps: int = 200, image_size: int = DEFAULT_IMAGE_SIZE, camera: str = DEFAULT_CAMERA,
                 video_path: str | Path | None = None, timeline_path: str | Path | None = None,
                 needs_image: bool = True, instance: int = 0) -> None:
        self.policy_name, self.task, self.condition, self.episode, self.seed = policy_name, task, condition, episode, seed
        self.max_steps, self.video_path, self.timeline_path = max_steps, video_path, timeline_path
        self.spec = get_task(task)
        self.env, obs = reset_scene(task, variation, seed, image_size, camera, instance)  # one env per slot
        t0 = time.perf_counter()
        self.need_image = needs_image or video_path is not None
        self.env_time = self.policy_time = 0.0
        self.experts: list[str] = []
        self.env_obs = [obs[:39].astype(np.float32)]
        self.frames: list[np.ndarray] = []
        self.success = False
        self._render(obs)
        self.env_time += time.perf_counter() - t0  # the first frame (the reset is not timed)

    def _render(self, obs: np.ndarray) -> None:
        self._obs = obs
        self._image = render(self.env) if self.need_image else None

    @property
    def done(self) -> bool:
        return self.success or len(self.experts) >= self.max_steps

    def observation(self) -> dict[str, Any]:
        """What the policy reads: the frame, the proprioceptive state, the full state, the instruction."""
        return {"image": self._image, "state": self._obs[:4], "env_obs": self._obs,
                "instruction": self.spec.instruction}

    def step(self, action: np.ndarray, expert: str, policy_time: float = 0.0) -> None:
        """Execute ``action`` (chosen by ``expert``), then render the next frame unless the episode is over."""
        t0 = time.perf_counter()
        if self.video_path is not None:
            self.frames.append(self._image)
        obs, _, _, _, info = self.env.step(np.asarray(action, dtype=np.float64))
        self.experts.append(expert)
        self.policy_time += policy_time
        self.env_obs.append(obs[:39].astype(np.float32))
        self.success = info.get("success", 0.0) >= 1.0
        if not self.done:
            self._render(obs)
        self.env_time += time.perf_counter() - t0

    def record(self) -> dict[str, Any]:
        """The episode record (what the JSONL log holds); writes the video and the gate timeline."""
        spec = self.spec
        if self.video_path is not None:
            self.frames.append(render(self.env))
            write_video(self.frames, self.video_path)
        states = np.stack(self.env_obs)
        distance = np.linalg.norm(states[:, 0:3] - states[:, 4:7], axis=1)
        reached = transit_step(states, spec.transit_distance)
        from harmowam.registry import get_label_strategy

        phase = get_label_strategy("proximity")({"env_state": states, "state": states[:, :4]}, task=self.task)
        experts = self.experts
        if self.timeline_path is not None:
            outcome = "success" if self.success else "failure"
            gate_timeline(self.timeline_path, experts, phase[:-1], distance, spec.transit_distance,
                          f"{self.policy_name}: {self.task}, {self.condition}, episode {self.episode} "
                          f"(seed {self.seed}): {outcome}")
        counts = {e: experts.count(e) for e in dict.fromkeys(experts)}
        return {
            **routing_against_labels(experts, phase[:-1]),
            "policy": self.policy_name, "task": self.task, "condition": self.condition, "episode": self.episode,
            "seed": self.seed, "success": self.success, "transit": reached is not None, "steps": len(experts),
            "min_distance": round(float(distance.min()), 4), "transit_step": reached,
            "object_displacement": round(float(np.linalg.norm(states[:, 4:7] - states[0, 4:7], axis=1).max()), 4),
            "expert_steps": counts,
            "interaction_label_steps": int(phase[:-1].sum()),
            "env_time_s": round(self.env_time, 4), "policy_time_s": round(self.policy_time, 4),
            "video": str(self.video_path) if self.video_path is not None else None,
            "timeline": str(self.timeline_path) if self.timeline_path is not None else None,
        }


def run_episode(policy: EvalPolicy, task: str, condition: str, variation: dict[str, Any], episode: int, seed: int,
                max_steps: int = 200, image_size: int = DEFAULT_IMAGE_SIZE, camera: str = DEFAULT_CAMERA,
                video_path: str | Path | None = None, timeline_path: str | Path | None = None) -> dict[str, Any]:
    """Roll ``policy`` out once, alone, in this process; returns the episode record."""
    rollout = Rollout(policy.name, task, condition, variation, episode, seed, max_steps, image_size, camera,
                      video_path, timeline_path, policy.needs_image)
    policy.reset(0, task, seed)
    while not rollout.done:
        t0 = time.perf_counter()
        actions, experts = policy.act([0], [rollout.observation()])
        rollout.step(actions[0], experts[0], time.perf_counter() - t0)
    return rollout.record()


#: the tracked object point moved this far from where it started: the hand has been in contact with it
OBJECT_MOVED_M = 0.01


def transit_step(states: np.ndarray, transit_distance: float, moved: float = OBJECT_MOVED_M) -> int | None:
    """The first step at which the transit phase is over, or None: the hand came within ``transit_distance``
    of the task's object (``obs[0:3]`` to ``obs[4:7]``), or the object has moved ``moved`` metres from its
    start. Every task's success moves its object (puck, plate, drawer and door handles, button), so every
    successful episode has transited. Proximity alone did not: a learned policy can press or pull from
    further off the tracked point than the scripted expert's closest approach (the H100 run had
    button-press-topdown successes that counted no transit)."""
    near = np.linalg.norm(states[:, 0:3] - states[:, 4:7], axis=1) <= transit_distance
    shifted = np.linalg.norm(states[:, 4:7] - states[0, 4:7], axis=1) >= moved
    hits = np.flatnonzero(near | shifted)
    return int(hits[0]) if len(hits) else None


def routing_against_labels(experts: list[str], interaction: np.ndarray) -> dict[str, Any]:
    """How a gated policy routed in the states it actually visited, against their ``proximity`` phase labels:
    the fraction of steps where it chose the predictive expert exactly on interaction steps (``gate_agreement``),
    and the predictive fraction within interaction and within transit steps. Empty for ungated policies."""
    if not any(e in ("predictive", "reactive") for e in experts):
        return {}
    predictive = np.array([e == "predictive" for e in experts])
    label = np.asarray(interaction, dtype=bool)[:len(predictive)]

    def frac(x: np.ndarray) -> float | None:
        return round(float(x.mean()), 4) if len(x) else None

    return {"gate_agreement": frac(predictive == label), "predictive_in_interaction": frac(predictive[label]),
            "predictive_in_transit": frac(predictive[~label])}
