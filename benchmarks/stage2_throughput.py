"""Stage-2 optimiser steps per second: world-model outputs from the cache against sampling them every batch.

    python benchmarks/stage2_throughput.py --workdir runs/pipeline/quick

Runs the stage-2 config (``experiments/harmowam.yaml`` by default) through
Lightning's Trainer on the first ``--episodes-per-task`` demonstrations of each task of
``<workdir>/data/demos``, with the world model in ``<workdir>/checkpoints/world_model``.
Four paths: the world model sampled for every batch (``world_model_cache: false``) with
its full five-step loop (the old default) and with a single denoising step, then the
same two read from the cache (built at fit start, before the timed steps; its build
time, the seconds from fit start to the first batch, is reported apart, and per-step speed does not depend on the dataset's size). Each
path runs in a process of its own: measured one after another in one process, the same
cached path was up to 18% slower in later places than in first (23% in an earlier run).
``--repeats`` processes per path run round-robin (every path once, then every path
again), so a slow drift of a shared machine falls on all paths alike; 12 steps in one
process each gave ratios from 3.7x to 5.0x on one folder. Prints the median seconds per
optimiser step over the timed steps of all repeats, steps per second, each repeat's own
median, and the ratio to the five-step on-the-fly path measured in the same run; writes
them to ``--out`` (JSON). Nothing is logged or checkpointed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import torch

from harmowam.cli import positive_int

REPO = Path(__file__).resolve().parents[1]


class StepTimer(L.Callback):
    """Wall-clock seconds between consecutive training-batch ends (loading, forward, backward, step), and the
    seconds from fit start to the first batch: the module builds (or reads) its world-model cache there."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.setup_s = 0.0
        self._last: float | None = None

    def on_fit_start(self, trainer, pl_module) -> None:  # runs before the module's own on_fit_start
        self._fit_start = time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        self.setup_s = time.perf_counter() - self._fit_start

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.times.append(now - self._last)
        self._last = now


def measure(config: Path, overrides: list[str], steps: int) -> dict[str, float]:
    from harmowam.cli import build_cli  # the `lightning` command's parser: it reads the config's `base:`

    cli = build_cli(["-c", str(config), "--trainer.logger=false", "--trainer.enable_checkpointing=false",
                     "--trainer.callbacks=null", "--trainer.enable_progress_bar=false",
                     "--trainer.limit_val_batches=0", f"--trainer.max_steps={steps + 1}",
                     "--trainer.max_time=null", "--trainer.enable_model_summary=false", *overrides], run=False)
    model, data = cli.model, cli.datamodule
    timer = StepTimer()
    trainer = L.Trainer(**{**_trainer_kwargs(cli), "callbacks": [timer]})
    trainer.fit(model, datamodule=data)
    return {"step_times_s": [round(t, 4) for t in timer.times], "cache_build_s": round(timer.setup_s, 1)}


def summarise(runs: list[dict]) -> dict:
    """One path's repeats: the median over all their timed steps, and each repeat's own median (its spread).
    ``cache_build_s`` is the first repeat's: it builds the cache when none is on disk (later ones read it)."""
    times = [t for run in runs for t in run["step_times_s"]]
    per_step = statistics.median(times)
    return {"median_s_per_step": round(per_step, 4), "steps_per_s": round(1 / per_step, 3), "timed_steps": len(times),
            "repeat_medians_s": [round(statistics.median(run["step_times_s"]), 4) for run in runs],
            "cache_build_s": runs[0]["cache_build_s"]}


def _trainer_kwargs(cli) -> dict:
    cfg = cli.config["trainer"]
    keep = ("accelerator", "devices", "max_steps", "limit_val_batches", "logger", "enable_checkpointing",
            "enable_progress_bar", "enable_model_summary", "gradient_clip_val", "num_sanity_val_steps", "precision")
    return {k: cfg[k] for k in keep if k in cfg and cfg[k] is not None} | {"logger": False}


def cpu_model() -> str:
    """The processor's name and its widest vector unit: step times differ by machine (AVX-512 or not)."""
    from harmowam.provenance import cpu_name

    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return cpu_name()
    vector = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "no avx2"
    return f"{cpu_name()} ({vector})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="runs/pipeline/quick", help="folder with data/demos and checkpoints/world_model")
    ap.add_argument("--config", default=str(REPO / "experiments" / "harmowam.yaml"))
    ap.add_argument("--steps", type=int, default=12, help="timed optimiser steps per path")
    ap.add_argument("--episodes-per-task", type=int, default=3, help="demonstrations per task to train on")
    ap.add_argument("--repeats", type=positive_int, default=2, help="processes per path, run round-robin")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "stage2_throughput_cpu.json"))
    ap.add_argument("--only", help=argparse.SUPPRESS)  # one path, in the child process; prints its JSON
    args = ap.parse_args()

    from harmowam.data.subset import write_subset

    # paths given relative to where the script was launched, before moving into the workdir
    launched_from, out = Path.cwd(), Path(args.out).resolve()
    args.config = str(Path(args.config).resolve())
    os.chdir(args.workdir)
    torch.manual_seed(0)
    data = write_subset("data/demos", f"data/demos_first{args.episodes_per_task}", args.episodes_per_task)
    common = [f"--data.init_args.data_dirs=[{data}]"]
    paths = {
        "on_the_fly": [*common, "--model.init_args.world_model_cache=false", "--model.init_args.world_model_steps=null"],
        "cached": [*common, "--model.init_args.world_model_cache=true", "--model.init_args.world_model_steps=null"],
        "on_the_fly_single_step": [*common, "--model.init_args.world_model_cache=false",
                                   "--model.init_args.world_model_steps=1"],
        "cached_single_step": [*common, "--model.init_args.world_model_cache=true", "--model.init_args.world_model_steps=1"],
    }
    if args.only:
        print(json.dumps(measure(Path(args.config), paths[args.only], args.steps)))
        return
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name in paths:
            child = subprocess.run([sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--only", name],
                                   cwd=launched_from, check=True, stdout=subprocess.PIPE, text=True)
            runs[name].append(json.loads(child.stdout.strip().splitlines()[-1]))
    results = {name: summarise(r) for name, r in runs.items()}
    for name, r in results.items():
        print(f"{name:22s} {r['median_s_per_step']:.3f} s/step  {r['steps_per_s']:.2f} steps/s  repeats "
              f"{', '.join(f'{m:.3f}' for m in r['repeat_medians_s'])}  (cache build {r['cache_build_s']} s)", flush=True)
    base = results["on_the_fly"]["median_s_per_step"]
    for name in paths:
        results[name]["speedup_vs_on_the_fly"] = round(base / results[name]["median_s_per_step"], 2)
    print("speed-up of the cached path: " + ", ".join(f"{k} {v['speedup_vs_on_the_fly']}x" for k, v in results.items()))
    report = {"config": args.config, "workdir": str(Path.cwd()), "data": str(data), "steps": args.steps,
              "repeats": args.repeats,
              "threads": torch.get_num_threads(),
              "cpu": cpu_model(), "torch": torch.__version__, "results": results}
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
