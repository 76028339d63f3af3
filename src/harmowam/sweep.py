"""Run a grid of configs and overrides one after another; write one table of final metrics.

A sweep file::

    name: paradigms
    output: runs/sweeps/paradigms          # optional; default runs/sweeps/<name>
    overrides: ["--trainer.max_steps=200"]  # applied to every run
    grid:
      config: [experiments/harmowam.yaml, experiments/joint_modeling.yaml]
      variants:                             # optional; crossed with the configs
        base: []
        low_lr: ["--model.init_args.lr=1e-4"]
    metrics: [val/policy_action_mse, val/gate_accuracy]   # optional; default: every val/ scalar

Each run is ``lightning fit`` in a subprocess, logging to ``<output>/<run>/version_0``.
A run that exits 0 gets a ``DONE`` marker and is skipped on the next invocation; a
failed run is recorded with its log and the sweep goes on.
"""

from __future__ import annotations

import csv
import itertools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harmowam.pipeline import final_metrics, lightning_executable


@dataclass
class SweepRun:
    name: str
    config: Path
    overrides: list[str]
    status: str = "pending"
    metrics: dict[str, float] | None = None


def load_sweep(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file '{path}' does not exist")
    spec = yaml.safe_load(path.read_text()) or {}
    grid = spec.get("grid")
    if not isinstance(grid, dict) or not grid.get("config"):
        raise ValueError(f"{path}: 'grid.config' must list at least one config file")
    for config in grid["config"]:
        if not Path(config).is_file():
            raise FileNotFoundError(f"{path}: config '{config}' in grid.config does not exist")
    spec.setdefault("name", path.stem)
    spec.setdefault("output", f"runs/sweeps/{spec['name']}")
    return spec


def plan(spec: dict[str, Any]) -> list[SweepRun]:
    variants = spec["grid"].get("variants") or {"base": []}
    runs = []
    for config, (variant, extra) in itertools.product(spec["grid"]["config"], variants.items()):
        name = Path(config).stem if len(variants) == 1 else f"{Path(config).stem}-{variant}"
        runs.append(SweepRun(name, Path(config), list(spec.get("overrides", [])) + list(extra or [])))
    return runs


def run_sweep(path: str | Path) -> Path:
    spec = load_sweep(path)
    out = Path(spec["output"])
    out.mkdir(parents=True, exist_ok=True)
    exe = lightning_executable()
    runs = plan(spec)
    for i, run in enumerate(runs, 1):
        run_dir = out / run.name / "version_0"
        if (run_dir / "DONE").is_file():
            run.status = "done (skipped)"
        else:
            cmd = [str(exe), "fit", "-c", str(run.config), f"--trainer.logger.init_args.save_dir={out}",
                   f"--trainer.logger.init_args.name={run.name}", "--trainer.logger.init_args.version=0", *run.overrides]
            print(f"[{i}/{len(runs)}] {run.name}: {' '.join(cmd)}", flush=True)
            (out / run.name).mkdir(parents=True, exist_ok=True)
            with open(out / run.name / "sweep.log", "w") as log:
                code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
            if code == 0:
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "DONE").write_text("")
                run.status = "done"
            else:
                run.status = f"failed (exit {code}, see {out / run.name / 'sweep.log'})"
                print(f"    {run.status}", flush=True)
        if run_dir.is_dir():
            run.metrics = final_metrics(run_dir)
    return write_table(runs, out, spec.get("metrics"))


def write_table(runs: list[SweepRun], out: Path, metrics: list[str] | None = None) -> Path:
    if metrics is None:
        metrics = sorted({k for r in runs for k in (r.metrics or {}) if k.startswith("val/")})
    header = ["run", "config", "overrides", "status", *metrics]
    rows = []
    for r in runs:
        values = [f"{r.metrics[m]:.4f}" if r.metrics and m in r.metrics else "" for m in metrics]
        rows.append([r.name, str(r.config), " ".join(r.overrides), r.status, *values])
    with open(out / "results.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out / "results.md"
