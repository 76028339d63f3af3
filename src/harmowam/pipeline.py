"""The main job end to end on built-in defaults: generate data, train each stage, report.

Steps: the two data regimes (``demos``, ``wm_video``), stages 0-1
(``experiments/world_model.yaml``), stage 2 (``experiments/harmowam.yaml``), and
``report.json`` with every stage's final validation metrics.

Every step skips work that is already done (a dataset folder with ``meta.json``, a
run folder with an exported model), so a rerun after an interruption resumes.
Stages run as ``lightning fit`` subprocesses of the shipped configs, exactly as a
user would run them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harmowam.sim.generate import PRESETS, GenerationConfig, generate
from harmowam.sim.variations import SceneVariation

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
WORLD_MODEL_EXPORT = Path("checkpoints/world_model")  # where world_model.yaml exports, read by stage 2

#: pipeline presets: data size per regime and extra `lightning` overrides per stage
PIPELINES: dict[str, dict[str, Any]] = {
    "default": {"episodes": None, "world_model_overrides": [], "policy_overrides": []},
    "smoke": {"episodes": 3,
              "world_model_overrides": ["--trainer.max_steps=30", "--model.init_args.vae_steps=15",
                                        "--trainer.val_check_interval=30", "--trainer.limit_val_batches=2"],
              "policy_overrides": ["--trainer.max_steps=10", "--trainer.val_check_interval=10",
                                   "--trainer.limit_val_batches=2"]},
}


def _lightning(config: Path, workdir: Path, overrides: list[str]) -> None:
    exe = Path(sys.executable).parent / "lightning"
    cmd = [str(exe), "fit", "-c", str(config), *overrides]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=workdir, check=True)


def latest_run(workdir: Path, name: str) -> Path | None:
    runs = sorted((workdir / "runs" / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    return runs[-1] if runs else None


def final_metrics(run: Path) -> dict[str, float]:
    """The last value of every scalar a run logged to TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return {tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"]}


def run_pipeline(workdir: str | Path = ".", preset: str = "default") -> dict[str, Any]:
    if preset not in PIPELINES:
        raise ValueError(f"unknown pipeline preset '{preset}'; presets: {', '.join(PIPELINES)}")
    spec = PIPELINES[preset]
    workdir = Path(workdir).resolve()
    data = workdir / "data"
    for regime, p in PRESETS.items():
        out = data / regime
        if (out / "meta.json").is_file():
            print(f"[data] {out} exists, skipping")
            continue
        cfg = GenerationConfig(episodes=spec["episodes"] or p["episodes"], seed=p["seed"],
                               variation=SceneVariation(**p["variation"]))
        generate(out, cfg, overwrite=True, preset=regime)
    run = latest_run(workdir, "world_model")
    if not (workdir / WORLD_MODEL_EXPORT / "world_model.json").is_file():
        _lightning(EXPERIMENTS / "world_model.yaml", workdir, spec["world_model_overrides"])
        run = latest_run(workdir, "world_model")
    else:
        print(f"[world model] {workdir / WORLD_MODEL_EXPORT} exists, skipping")
    assert run is not None
    policy_run = latest_run(workdir, "harmowam")
    if policy_run is None or not (policy_run / "checkpoints" / "last.ckpt").is_file():
        _lightning(EXPERIMENTS / "harmowam.yaml", workdir, spec["policy_overrides"])
        policy_run = latest_run(workdir, "harmowam")
    else:
        print(f"[policy] {policy_run} is trained, skipping")
    assert policy_run is not None
    report = {"world_model_run": str(run), "policy_run": str(policy_run)}
    for key, r in (("world_model", run), ("policy", policy_run)):
        metrics = final_metrics(r)
        report[key] = {k: round(metrics[k], 5) for k in sorted(metrics) if k.startswith("val/")}
    (workdir / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return report
