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

Each run is ``lightning fit`` in a subprocess, logging to ``<output>/<run>/version_<k>``
and writing its output to ``<output>/<run>/sweep.log``. Runs are trained the way the
pipeline trains them (:func:`harmowam.pipeline.train_run`): a finished run is skipped on
the next invocation, unless its config now resolves to something else (then the sweep
stops and names the changed keys); a killed run continues from its ``last.ckpt``; a
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

from harmowam.pipeline import FINISHED, final_metrics, latest_run, train_run


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
    runs = plan(spec)
    for i, run in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {run.name}", flush=True)
        log = out / run.name / "sweep.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        latest = latest_run(Path.cwd(), run.name, out)
        finished_before = latest is not None and (latest / FINISHED).is_file()
        overrides = [f"--trainer.logger.init_args.save_dir={out}", f"--trainer.logger.init_args.name={run.name}",
                     *run.overrides]
        if latest is not None and (latest / "DONE").is_file() and not finished_before:  # an older harmowam's marker
            run_dir, run.status = latest, "done (skipped)"
        else:
            run_dir, run.status = _train(run, overrides, out, log, finished_before)
        if run.status.startswith("failed"):
            print(f"    {run.status}", flush=True)
        if run_dir is not None and run_dir.is_dir():
            run.metrics = final_metrics(run_dir)
    return write_table(runs, out, spec.get("metrics"))


def _train(run: SweepRun, overrides: list[str], out: Path, log: Path, finished_before: bool
           ) -> tuple[Path | None, str]:
    """One run through the pipeline's training step: its folder (None if none was made) and its status."""
    try:
        return (train_run(Path.cwd(), run.name, run.config, overrides, save_dir=out, log=log),
                "done (skipped)" if finished_before else "done")
    except subprocess.CalledProcessError as exc:
        return latest_run(Path.cwd(), run.name, out), f"failed (exit {exc.returncode}, see {log})"
    except SystemExit as exc:  # the config does not resolve: lightning's one-line error, kept in the log
        with open(log, "a") as f:
            f.write(f"{exc.code}\n")
        return None, f"failed (the config does not resolve, see {log})"


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
