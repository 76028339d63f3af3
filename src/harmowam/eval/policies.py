"""What ``harmowam eval`` can roll out: a trained checkpoint, the scripted expert, a random policy.

Every policy answers ``reset(task, seed)`` and ``act(observation) -> (action, expert)``,
where ``expert`` names who produced the action (``predictive``/``reactive``/``average``
for a checkpoint, ``scripted`` or ``random`` for the references): the gate timeline
is drawn from it. A policy is described by a small picklable spec, so each worker
process builds its own copy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harmowam.eval.suite import Suite
from harmowam.sim.tasks import get_task

REFERENCE_POLICIES = ("scripted", "random")


class EvalPolicy(Protocol):
    name: str
    needs_image: bool

    def reset(self, task: str, seed: int) -> None: ...

    def act(self, observation: dict[str, Any]) -> tuple[np.ndarray, str]: ...


class ScriptedPolicy:
    """Meta-World's scripted expert for the task: reads the full state, not the image."""

    name = "scripted"
    needs_image = False

    def reset(self, task: str, seed: int) -> None:
        from harmowam.sim.env import expert_policy

        self._policy = expert_policy(task)

    def act(self, observation: dict[str, Any]) -> tuple[np.ndarray, str]:
        return np.clip(self._policy.get_action(observation["env_obs"]), -1, 1), "scripted"


class RandomPolicy:
    """Uniform actions in [-1, 1], seeded per episode."""

    name = "random"
    needs_image = False

    def reset(self, task: str, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, observation: dict[str, Any]) -> tuple[np.ndarray, str]:
        return self._rng.uniform(-1, 1, size=4), "random"


class CheckpointPolicy:
    """A trained stage-2 :class:`~harmowam.policy_module.PolicyModule`, through ``select_action``."""

    needs_image = True

    def __init__(self, path: str | Path, name: str = "policy", n_action_steps: int | None = None,
                 device: str = "cpu", suite: Suite | None = None, gate: str | None = None) -> None:
        import torch

        self.name = name
        self.module = load_policy_checkpoint(path, map_location=device, suite=suite).eval()
        if gate is not None:
            self.module.gate = fixed_gate(gate, self.module, path)
        if n_action_steps is not None:
            if not 1 <= n_action_steps <= self.module.hparams.action_horizon:
                raise ValueError(f"n_action_steps must be in [1, {self.module.hparams.action_horizon}] (the checkpoint's "
                                 f"action_horizon), got {n_action_steps}")
            self.module.hparams.n_action_steps = n_action_steps
        self._torch = torch

    @property
    def image_size(self) -> int:
        return self.module.shapes.image_size

    @property
    def camera(self) -> str | None:
        """The camera view of the training data (None for checkpoints written before it was recorded)."""
        return self.module.data_info.get("camera")

    def reset(self, task: str, seed: int) -> None:
        self.module.reset()
        self._torch.manual_seed(seed)  # the diffusion expert's and the world model's noise

    def act(self, observation: dict[str, Any]) -> tuple[np.ndarray, str]:
        torch = self._torch
        obs = {"image": torch.from_numpy(observation["image"]).permute(2, 0, 1)[None],
               "state": torch.from_numpy(np.asarray(observation["state"], dtype=np.float32))[None],
               "instruction": [observation["instruction"]]}
        action = self.module.select_action(obs)[0].float().cpu().numpy()
        return np.clip(action, -1, 1), self.module.last_experts[0]


def fixed_gate(name: str, module: Any, path: str | Path) -> Any:
    """A registered gate that learns nothing (``always_predictive``, ``always_reactive``, ``average``), to roll out
    one expert path of a trained policy alone; the experts it routes to must be in the checkpoint."""
    from harmowam.registry import build_component

    gate = build_component("gate", name, shapes=module.shapes).to(module.device)
    if gate.learned:
        raise ValueError(f"--gate '{name}' learns from labels and would act untrained; give a fixed gate such as "
                         "always_predictive or always_reactive")
    missing = [r for r in gate.roles if r not in module.experts]
    if missing:
        raise ValueError(f"--gate '{name}' routes to {missing}, but checkpoint '{path}' has experts "
                         f"{sorted(module.experts)}")
    return gate


def read_policy_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's contents, with errors that say what is wrong with the file."""
    from harmowam.safe_load import load_checkpoint

    path = Path(path)
    ckpt = load_checkpoint(path)
    hparams = ckpt.get("hyper_parameters", {})
    if "experts" not in hparams or "normalizer" not in ckpt:
        raise ValueError(f"'{path}' is not a stage-2 policy checkpoint (no experts or normalisation statistics in it); "
                         "a world-model checkpoint cannot act: train a policy with experiments/harmowam.yaml")
    return ckpt


def check_shapes(path: str | Path, hparams: dict[str, Any], suite: Suite) -> None:
    """The checkpoint's state and action sizes must be the suite's (checked before its weights are loaded)."""
    for key, want in (("action_dim", suite.action_dim), ("state_dim", suite.state_dim)):
        have = hparams.get(key, 4)
        if have != want:
            raise ValueError(f"checkpoint '{path}' has {key}={have}, suite '{suite.name}' needs {want}")


def load_policy_checkpoint(path: str | Path, map_location: str = "cpu", suite: Suite | None = None) -> Any:
    """The policy of a stage-2 checkpoint; with ``suite``, its shapes are checked before its weights load."""
    from harmowam.policy_module import PolicyModule
    from harmowam.safe_load import load_lightning_module

    ckpt = read_policy_checkpoint(path)
    if suite is not None:
        check_shapes(path, ckpt["hyper_parameters"], suite)
    return load_lightning_module(PolicyModule, path, map_location=map_location)


def check_instructions(policy: "CheckpointPolicy", tasks: list[str]) -> None:
    """The checkpoint's instruction encoder must know every task's instruction."""
    for task in tasks:
        instruction = get_task(task).instruction
        try:
            policy.module.text([instruction])
        except Exception as exc:
            raise ValueError(f"checkpoint of '{policy.name}' cannot encode the instruction of task '{task}' "
                             f"('{instruction}'): {exc}") from exc


def build_policy(spec: dict[str, Any]) -> EvalPolicy:
    """A policy from its spec: ``{"kind": "checkpoint", "path": ..., ...}``, ``{"kind": "scripted"}``, ``{"kind": "random"}``."""
    kind = spec.get("kind")
    if kind == "checkpoint":
        return CheckpointPolicy(spec["path"], spec.get("name", "policy"), spec.get("n_action_steps"),
                                spec.get("device", "cpu"), gate=spec.get("gate"))
    if kind == "scripted":
        return ScriptedPolicy()
    if kind == "random":
        return RandomPolicy()
    raise ValueError(f"unknown policy kind '{kind}'. Kinds: checkpoint, {', '.join(REFERENCE_POLICIES)}")


def file_digest(path: str | Path) -> str:
    """sha256 of a file: a resumed evaluation must roll out the same checkpoint."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_policy_name(path: str | Path) -> str:
    """``runs/<experiment>/version_N/checkpoints/x.ckpt`` -> ``<experiment>-vN``; otherwise the file's stem."""
    path = Path(path)
    if path.parent.name == "checkpoints" and path.parent.parent.name.startswith("version_"):
        run = path.parent.parent
        return f"{run.parent.name}-v{run.name.split('_', 1)[1]}"
    return path.stem
