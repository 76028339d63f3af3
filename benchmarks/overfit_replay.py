"""Is anything broken between training and acting? Memorise a few demonstrations, then replay their scenes.

    python benchmarks/overfit_replay.py --workdir runs/pipeline/quick

Takes the first ``--episodes`` demonstrations of each task from ``<workdir>/data/demos``,
trains stage 2 (``--config``, ``experiments/harmowam.yaml`` by default, on ``<workdir>/checkpoints/world_model``,
without image augmentation unless ``--augment``) on them alone until the experts fit
them, and rolls the policy out in closed loop on
exactly those episodes' stored seeds and scene, with the predictive expert alone,
the reactive expert alone and the learned gate, executing 8 and 1 actions per
chunk. A policy that memorised its training scenes must solve them; if it does not,
the per-episode diagnostics say where training and acting part: the first frame's
difference from the stored one (reset, rendering or orientation), and the action
error against the demonstration over the first steps (before the paths diverge).
Prints a table and writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from harmowam.data.subset import write_subset

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "experiments" / "harmowam.yaml"


def config_digest(config: Path) -> str:
    """Eight hex digits of the variant file's text: two variants with one file name, or a variant edited since its
    last run, train runs of their own instead of reusing another's checkpoint."""
    return hashlib.sha1(config.read_bytes()).hexdigest()[:8]


def train(workdir: Path, data: Path, steps: int, name: str, augment: bool, config: Path) -> Path:
    """Stage 2 on the subset for ``steps`` optimiser steps; a finished run is reused, a killed one resumed."""
    from harmowam.safe_load import load_checkpoint

    ckpt = workdir / "runs" / name / "version_0" / "checkpoints" / "last.ckpt"
    if ckpt.is_file() and load_checkpoint(ckpt)["global_step"] >= steps:
        return ckpt
    # No validation data, so checkpoints come from step intervals only (the shipped ModelCheckpoint would write
    # one at every 17-step epoch): last.ckpt every 250 steps and at the end.
    callbacks = [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"save_last": True, "save_top_k": 0}},
                 {"class_path": "harmowam.training.PeriodicLastCheckpoint", "init_args": {"every_n_steps": 250}}]
    cmd = [str(Path(sys.executable).parent / "lightning"), "fit", "-c", str(config),
           f"--data.init_args.data_dirs=[{data}]", "--data.init_args.val_fraction=0",
           "--trainer.limit_val_batches=0", f"--trainer.callbacks={json.dumps(callbacks)}",
           f"--trainer.max_steps={steps}", "--trainer.max_time=null",
           f"--trainer.logger.init_args.name={name}", "--trainer.logger.init_args.version=0",
           "--trainer.enable_progress_bar=false", "--model.init_args.warmup_steps=20",
           # memorising is the point: random shifts of 4 pixels move push's 1-2 pixel goal, which is what
           # augmentation is for in training and what keeps a policy from memorising a scene here
           *([] if augment else ["--model.init_args.image_shift=0", "--model.init_args.color_jitter=0"]),
           *([f"--ckpt_path={ckpt}"] if ckpt.is_file() else [])]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=workdir, check=True)
    return ckpt


def demo_action_error(policy, ep, demo: dict, states: int) -> float:
    """Mean absolute error of the policy's first action on the demonstration's first ``states`` stored
    observations against the stored actions (replanning at each one with ``n_action_steps=1``)."""
    policy.reset(0, ep.task, ep.seed)
    errs = []
    for t in range(min(states, ep.length)):
        obs = {"image": demo["image"][t], "state": demo["state"][t], "instruction": ep.instruction}
        actions, _ = policy.act([0], [obs])
        errs.append(float(np.abs(actions[0] - demo["action"][t]).mean()))
    return round(float(np.mean(errs)), 4)


def replay(ckpt: Path, data: Path, gate: str, n_action_steps: int, max_steps: int) -> list[dict]:
    from harmowam.data.format import EpisodeStore
    from harmowam.eval.policies import CheckpointPolicy
    from harmowam.eval.rollout import run_episode
    from harmowam.gates.fixed import ConstantGate
    from harmowam.sim.env import render, reset_scene

    store = EpisodeStore(data)
    gen = store.meta["generation"]
    policy = CheckpointPolicy(ckpt, name=f"{gate}/n{n_action_steps}", n_action_steps=n_action_steps)
    if gate != "learned":
        policy.module.gate = ConstantGate(policy.module.shapes, 1.0 if gate == "predictive" else 0.0)
    rows = []
    for ep in store.episodes:
        demo = store.episode(ep.index)
        rec = run_episode(policy, ep.task, "replay", gen["variation"], ep.index, ep.seed, max_steps,
                          gen["image_size"], gen["camera"])
        # diagnostics: the first frame as the policy sees it, and its actions along the demonstration's states
        env, _ = reset_scene(ep.task, gen["variation"], ep.seed, gen["image_size"], gen["camera"])
        first = render(env)
        rows.append({"task": ep.task, "seed": ep.seed, "success": rec["success"], "steps": rec["steps"],
                     "first_frame_max_abs_diff": int(np.abs(first.astype(int) - demo["image"][0].astype(int)).max()),
                     "action_mae_on_demo_states": demo_action_error(policy, ep, demo, 10),
                     "expert_steps": rec["expert_steps"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="runs/pipeline/quick",
                    help="a pipeline folder with data/demos and checkpoints/world_model")
    ap.add_argument("--episodes", type=int, default=2, help="demonstrations per task to memorise")
    ap.add_argument("--steps", type=int, default=1500, help="stage-2 optimiser steps on them")
    ap.add_argument("--max-steps", type=int, default=200, help="step limit per replayed episode")
    ap.add_argument("--augment", action="store_true", help="keep the config's image augmentation (off by default)")
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="the stage-2 config to train (a variant to compare)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "overfit_replay.json"))
    args = ap.parse_args()

    os.environ.setdefault("MUJOCO_GL", "egl")
    workdir = Path(args.workdir).resolve()
    data = write_subset(workdir / "data" / "demos", workdir / "data" / f"overfit_{args.episodes}", args.episodes)
    # the run's name carries its size, so a rerun with other settings trains anew instead of reusing a checkpoint
    config = Path(args.config).resolve()
    name = (f"overfit_{args.episodes}ep_{args.steps}steps" + ("_augmented" if args.augment else "")
            + ("" if config == DEFAULT_CONFIG else f"_{config.stem}_{config_digest(config)}"))
    ckpt = train(workdir, data, args.steps, name, args.augment, config)
    results = {}
    for gate in ("predictive", "reactive", "learned"):
        for n in (8, 1):
            rows = replay(ckpt, data, gate, n, args.max_steps)
            rate = float(np.mean([r["success"] for r in rows]))
            results[f"{gate}/n{n}"] = {"success": rate, "episodes": rows}
            mae = np.mean([r["action_mae_on_demo_states"] for r in rows])
            print(f"{gate:10s} n_action_steps={n}: success {rate:.2f} ({sum(r['success'] for r in rows)}/{len(rows)}), "
                  f"action MAE on the demonstrations' first states {mae:.3f}", flush=True)
    report = {"workdir": str(workdir), "config": str(config), "data": str(data), "checkpoint": str(ckpt), "steps": args.steps,
              "episodes_per_task": args.episodes, "augment": args.augment, "results": results}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
