"""What ``harmowam eval`` can roll out: a trained checkpoint, the scripted expert, a random policy.

A policy acts for a batch of episodes at once: evaluation steps many environments in
worker processes and serves all of them with one policy call per control step. Each
episode runs in a *slot*: ``reset(slot, task, seed)`` starts one, and
``act(slots, observations) -> (actions [B, A], experts)`` continues those in ``slots``;
``experts[i]`` names who produced the action (``predictive``/``reactive``/``average``
for a checkpoint, ``scripted`` or ``random`` for the references), from which the gate
timeline is drawn. A policy is described by a small picklable spec.
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

    def reset(self, slot: int, task: str, seed: int) -> None: ...

    def act(self, slots: list[int], observations: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]: ...


class ScriptedPolicy:
    """Meta-World's scripted expert for the task: reads the full state, not the image."""

    name = "scripted"
    needs_image = False

    def __init__(self) -> None:
        self._policies: dict[int, Any] = {}

    def reset(self, slot: int, task: str, seed: int) -> None:
        from harmowam.sim.env import expert_policy

        self._policies[slot] = expert_policy(task)

    def act(self, slots: list[int], observations: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
        actions = [self._policies[s].get_action(o["env_obs"]) for s, o in zip(slots, observations)]
        return np.clip(np.stack(actions), -1, 1), ["scripted"] * len(slots)


class RandomPolicy:
    """Uniform actions in [-1, 1], seeded per episode."""

    name = "random"
    needs_image = False

    def __init__(self) -> None:
        self._rngs: dict[int, np.random.Generator] = {}

    def reset(self, slot: int, task: str, seed: int) -> None:
        self._rngs[slot] = np.random.default_rng(seed)

    def act(self, slots: list[int], observations: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
        return np.stack([self._rngs[s].uniform(-1, 1, size=4) for s in slots]), ["random"] * len(slots)


class CheckpointPolicy:
    """A trained stage-2 :class:`~harmowam.policy_module.PolicyModule`, through ``select_action`` on the batch of
    every slot that waits for an action; each slot draws its noise from its own episode's seed."""

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

    def reset(self, slot: int, task: str, seed: int) -> None:
        self.module.reset([slot], [seed])  # the diffusion expert's and the world model's noise for this episode

    def act(self, slots: list[int], observations: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
        torch = self._torch
        obs = {"image": torch.from_numpy(np.stack([o["image"] for o in observations])).permute(0, 3, 1, 2),
               "state": torch.from_numpy(np.stack([o["state"] for o in observations]).astype(np.float32)),
               "instruction": [o["instruction"] for o in observations]}
        actions = self.module.select_action(obs, slots).float().cpu().numpy()
        return np.clip(actions, -1, 1), list(self.module.last_experts)


def default_device() -> str:
    """Where the pipeline and the comparison run their checkpoints: the GPU when there is one (with batched
    inference, see ``eval.runner.INFERENCE_MODES``), else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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
