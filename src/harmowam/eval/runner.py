"""``harmowam eval``: every (policy, task, condition, episode) as a job.

Everything that can be wrong with the request (suite, conditions, tasks, the
checkpoint's existence and shapes, a folder holding another evaluation) is checked
before the first rollout. ``envs`` episodes run at once: their environments step in
``workers`` processes and each policy acts for all of its episodes in one batched
call per control step (:mod:`harmowam.eval.env_pool`). The parent appends each
finished episode to the log at once, logs its gate timeline to TensorBoard, and
writes the tables at the end.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from harmowam.eval.metrics import cell_metrics, summary_rows
from harmowam.eval.statistics import format_rate, nanmean, outcomes, paired_difference, wilson_interval
from harmowam.eval.policies import (REFERENCE_POLICIES, CheckpointPolicy, build_policy, check_instructions,
                                    default_policy_name, file_digest)
from harmowam.eval.records import EpisodeLog, check_manifest, record_key
from harmowam.eval.suite import IN_DOMAIN, get_suite
from harmowam.files import FolderLock
from harmowam.sim.env import DEFAULT_CAMERA, DEFAULT_IMAGE_SIZE


@dataclass
class EvalConfig:
    suite: str = "metaworld6"
    conditions: str | list[str] = "all"
    tasks: str | list[str] = "all"
    episodes: int = 5  # per task and condition
    max_steps: int | None = None  # None: the suite's (200)
    workers: int = 2  # environment processes
    inference: str = "auto"  # workers | batched | auto: see INFERENCE_MODES
    envs: int = 8  # batched inference: episodes in flight over the workers
    videos: int = 1  # episodes per (policy, task, condition) with a video
    camera: str = DEFAULT_CAMERA  # for reference policies when no checkpoint sets it
    image_size: int = DEFAULT_IMAGE_SIZE  # for reference policies when no checkpoint sets it
    out: str | Path = "runs/eval"
    timelines: bool = True
    tensorboard: bool = True


@dataclass
class PolicySpec:
    kind: str  # checkpoint | scripted | random
    path: str | None = None
    name: str | None = None  # the row name; "+<gate>" is appended when gate is given
    n_action_steps: int | None = None
    device: str = "cpu"
    gate: str | None = None  # a fixed gate that replaces the checkpoint's: one expert path alone

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "name": self.name, "n_action_steps": self.n_action_steps,
                "device": self.device, "gate": self.gate}


#: Where policies act. ``workers``: every environment process runs its own copy of each policy, one episode at
#: a time (the fastest on CPU: there a checkpoint's inference is compute-bound, a batched call costs nearly as
#: much per sample, and the environments would wait for it; 1.56x the batched rate on 2 cores,
#: benchmarks/eval_throughput.py). ``batched``: ``envs`` episodes in flight, each policy acting for all of its
#: episodes in one call per control step in this process while the workers step the other half of the
#: environments (for an accelerator, whose call costs about the same for 1 or 48 samples).
#: ``auto``: batched when any checkpoint runs on a device other than the CPU.
INFERENCE_MODES = ("auto", "workers", "batched")


def inference_mode(cfg: "EvalConfig", specs: list[dict[str, Any]]) -> str:
    """The mode ``cfg.inference`` asks for (``auto`` resolved against the checkpoints' devices)."""
    if cfg.workers < 1 or cfg.envs < 1:
        raise ValueError(f"workers and envs must be at least 1, got workers={cfg.workers}, envs={cfg.envs}")
    if cfg.inference not in INFERENCE_MODES:
        raise ValueError(f"unknown inference mode '{cfg.inference}'; modes: {', '.join(INFERENCE_MODES)}")
    if cfg.inference != "auto":
        return cfg.inference
    devices = {s.get("device", "cpu") for s in specs if s["kind"] == "checkpoint"}
    return "batched" if any(not str(d).startswith("cpu") for d in devices) else "workers"


# -- workers (inference: workers) ----------------------------------------------------------------
_POLICIES: dict[str, Any] = {}


def _job(job: dict[str, Any]) -> dict[str, Any]:
    from harmowam.eval.rollout import run_episode

    key = json.dumps(job["policy"], sort_keys=True)
    if key not in _POLICIES:
        _POLICIES[key] = build_policy(job["policy"])
    return run_episode(_POLICIES[key], job["task"], job["condition"], job["variation"], job["episode"], job["seed"],
                       job["max_steps"], job["image_size"], job["camera"], job["video"], job["timeline"])


def _records_from_workers(jobs: list[dict[str, Any]], workers: int) -> Iterator[dict[str, Any]]:
    import multiprocessing as mp

    from harmowam.eval.env_pool import init_process

    workers = max(1, min(workers, len(jobs)))
    pool = mp.get_context("spawn").Pool(workers, initializer=init_process) if workers > 1 else None
    try:
        yield from (pool.imap_unordered(_job, jobs) if pool is not None else map(_job, jobs))
    finally:
        if pool is not None:
            pool.terminate()  # on Ctrl-C too: finished episodes are in the log already
            pool.join()


# -- the evaluation -----------------------------------------------------------------------------
def prepare_policies(specs: list[PolicySpec], suite_name: str, tasks: list[str]
                     ) -> tuple[list[dict[str, Any]], dict[str, Any], int | None, str | None]:
    """Check every policy before any rollout; returns their specs, fingerprints and the checkpoints' image size
    and camera (None without checkpoints, or for checkpoints that predate recording the camera)."""
    suite = get_suite(suite_name)
    out, fingerprints, image_size, camera = [], {}, None, None
    for spec in specs:
        d = spec.as_dict()
        if spec.kind == "checkpoint":
            d["name"] = (spec.name or default_policy_name(spec.path)) + (f"+{spec.gate}" if spec.gate else "")
            policy = CheckpointPolicy(spec.path, d["name"], spec.n_action_steps, "cpu", suite=suite, gate=spec.gate)
            check_instructions(policy, tasks)
            if image_size is not None and policy.image_size != image_size:
                raise ValueError(f"checkpoints observe different image sizes ({image_size} and {policy.image_size} for "
                                 f"'{d['name']}'): evaluate them separately")
            image_size = policy.image_size
            if policy.camera is not None:
                if camera is not None and policy.camera != camera:
                    raise ValueError(f"checkpoints were trained on different cameras ('{camera}' and '{policy.camera}' "
                                     f"for '{d['name']}'): evaluate them separately")
                camera = policy.camera
            d["path"] = str(Path(spec.path).resolve())
            fingerprints[d["name"]] = {"kind": "checkpoint", "sha256": file_digest(spec.path),
                                       "n_action_steps": policy.module.hparams.n_action_steps, "gate": spec.gate}
        elif spec.kind in REFERENCE_POLICIES:
            d["name"] = spec.name or spec.kind
            fingerprints[d["name"]] = {"kind": spec.kind}
        else:
            raise ValueError(f"unknown policy '{spec.kind}'. Give --ckpt PATH or --policy {'|'.join(REFERENCE_POLICIES)}")
        out.append(d)
    names = [d["name"] for d in out]
    if len(set(names)) != len(names):
        raise ValueError(f"two policies share a name: {names}; set --name")
    return out, fingerprints, image_size, camera


def evaluate(policies: list[PolicySpec], cfg: EvalConfig, progress: bool = True) -> dict[str, Any]:
    """Roll out every policy on the suite; returns the summary (also written to ``cfg.out``)."""
    suite = get_suite(cfg.suite)
    tasks = suite.select_tasks(cfg.tasks)
    conditions = suite.select_conditions(cfg.conditions)
    if cfg.episodes <= 0:
        raise ValueError(f"episodes must be positive, got {cfg.episodes}")
    if not policies:
        raise ValueError("no policy to evaluate: give --ckpt PATH and/or --policy scripted,random")
    max_steps = cfg.max_steps or suite.max_steps
    specs, fingerprints, ckpt_size, ckpt_camera = prepare_policies(policies, cfg.suite, tasks)
    image_size = ckpt_size or cfg.image_size
    camera = ckpt_camera or cfg.camera  # a policy sees what it was trained on
    mode = inference_mode(cfg, specs)
    out = Path(cfg.out)
    with FolderLock(out, "harmowam eval"):  # one evaluation per folder: a second one is refused, not interleaved
        return _evaluate(suite, tasks, conditions, specs, fingerprints, max_steps, image_size, camera, cfg, out,
                         progress, mode)


def _evaluate(suite: Any, tasks: list[str], conditions: list[str], specs: list[dict[str, Any]],
              fingerprints: dict[str, Any], max_steps: int, image_size: int, camera: str, cfg: EvalConfig, out: Path,
              progress: bool, mode: str) -> dict[str, Any]:
    check_manifest(out / "eval.json", {"suite": suite.name, "max_steps": max_steps, "camera": camera,
                                       "image_size": image_size, "policies": fingerprints})
    log = EpisodeLog(out / "episodes.jsonl")
    done = log.finished()

    def selected(key: tuple[str, str, str, int]) -> bool:  # policy, task, condition, episode
        return key[0] in fingerprints and key[1] in tasks and key[2] in conditions and key[3] < cfg.episodes
    jobs = []
    for spec in specs:  # checkpoints first: their episodes are the long ones
        for task in tasks:
            for condition in conditions:
                for k in range(cfg.episodes):
                    if (spec["name"], task, condition, k) in done:
                        continue
                    stem = f"{spec['name']}/{task}_{condition}_{k:03d}"
                    jobs.append({"policy": spec, "task": task, "condition": condition, "episode": k,
                                 "seed": suite.episode_seed(task, k),
                                 "variation": suite.conditions[condition].variation,
                                 "max_steps": max_steps, "image_size": image_size, "camera": camera,
                                 "video": str(out / "videos" / f"{stem}.gif") if k < cfg.videos else None,
                                 "timeline": str(out / "timelines" / f"{stem}.png") if cfg.timelines else None})
    total = len(jobs) + sum(1 for key in done if selected(key))
    print(f"[eval] {suite.name}: {len(specs)} policies x {len(tasks)} tasks x {len(conditions)} conditions x "
          f"{cfg.episodes} episodes = {total}; {total - len(jobs)} already in {log.path}, {len(jobs)} to run", flush=True)
    wall, steps = _run_jobs(jobs, log, cfg, out, progress, mode)
    records = [r for r in log if selected(record_key(r))]
    where = (f"{min(cfg.envs, len(jobs))} environments over {cfg.workers} processes, batched inference"
             if mode == "batched" else f"{min(cfg.workers, len(jobs))} processes, each with its own policy")
    return write_report(records, [s["name"] for s in specs], tasks, conditions, out, wall, len(jobs), steps, where)


def _run_jobs(jobs: list[dict[str, Any]], log: EpisodeLog, cfg: EvalConfig, out: Path, progress: bool,
              mode: str) -> tuple[float, int]:
    """Runs the jobs; returns the wall-clock seconds and the environment steps they took."""
    from harmowam.eval.env_pool import run_batched
    from harmowam.progress import progress_bar

    writer = None
    if cfg.tensorboard and jobs:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))
    start, steps = time.perf_counter(), 0
    bar = progress_bar(len(jobs), "eval", "ep", disable=not progress or not jobs)
    try:
        records = (run_batched(jobs, build_policy, cfg.envs, cfg.workers) if mode == "batched"
                   else _records_from_workers(jobs, cfg.workers))
        for record in records:
            log.append(record)
            steps += record["steps"]
            bar.update(1)
            if writer is not None and record["timeline"]:
                import imageio.v3 as iio

                tag = f"gate_timeline/{record['policy']}/{record['task']}/{record['condition']}"
                writer.add_image(tag, iio.imread(record["timeline"])[..., :3], record["episode"], dataformats="HWC")
    finally:  # on Ctrl-C too: finished episodes are in the log already
        bar.close()
        if writer is not None:
            writer.close()
    return time.perf_counter() - start, steps


# -- tables -------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def speed(records: list[dict[str, Any]], policies: list[str]) -> dict[str, dict[str, float]]:
    """Env steps per second per policy, from the environment's time alone and with the policy's inference."""
    table = {}
    for p in policies:
        rs = [r for r in records if r["policy"] == p]
        steps = sum(r["steps"] for r in rs)
        env_t = sum(r["env_time_s"] for r in rs)
        pol_t = sum(r["policy_time_s"] for r in rs)
        table[p] = {"steps": steps, "env_steps_per_s": steps / env_t if env_t else float("nan"),
                    "steps_per_s_with_policy": steps / (env_t + pol_t) if env_t + pol_t else float("nan")}
    return table


def json_safe(value: Any) -> Any:
    """NaN (an undefined rate: no episode, or no transit) as null, so the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def write_report(records: list[dict[str, Any]], policies: list[str], tasks: list[str], conditions: list[str],
                 out: Path, wall_s: float = 0.0, ran: int = 0, ran_steps: int = 0,
                 where: str = "") -> dict[str, Any]:
    """results.csv (per cell), summary.csv (Table 3), results.md (both), speed; returns the summary."""
    cells = cell_metrics(records)
    rows = summary_rows(cells, policies, tasks, conditions, IN_DOMAIN)
    ood = [c for c in conditions if c != IN_DOMAIN]
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "task", "condition", "episodes", "success", "success_low95", "success_high95", "transit",
                    "interaction_given_transit"])
        for (p, t, c), m in sorted(cells.items()):
            lo, hi = wilson_interval(m["successes"], m["episodes"])
            w.writerow([p, t, c, m["episodes"], m["success"], lo, hi, m["transit"], m["interaction"]])
    columns = [*conditions, *(["ood_avg", "relative_drop"] if ood and IN_DOMAIN in conditions else [])]
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", *columns, *(f"{c}_{k}" for c in columns if c != "relative_drop"
                                          for k in ("episodes", "low95", "high95"))])
        for row in rows:
            extra = []
            for c in (c for c in columns if c != "relative_drop"):
                n = row[f"{c}_episodes"]
                extra += [n, *wilson_interval(row[f"{c}_successes"], n)]
            w.writerow([row["policy"], *(row[c] for c in columns), *extra])
    sp = speed(records, policies)
    lines = ["## Success rate, averaged over tasks", "",
             "| policy | " + " | ".join("OOD avg" if c == "ood_avg" else "drop from ID" if c == "relative_drop" else c
                                      for c in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        vals = [f"{row[c]:.1%}" if c == "relative_drop" and not math.isnan(row[c]) else _fmt(row[c]) for c in columns]
        lines.append(f"| {row['policy']} | " + " | ".join(vals) + " |")
    lines += ["", "The same with 95% Wilson intervals and the episodes behind each cell (tasks pooled; with equal "
              "episodes per task the pooled rate is the average above):", "",
              "| policy | " + " | ".join("OOD avg" if c == "ood_avg" else c for c in columns if c != "relative_drop")
              + " |", "|---" * (len([c for c in columns if c != "relative_drop"]) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['policy']} | " + " | ".join(format_rate(row[f"{c}_successes"], row[f"{c}_episodes"])
                                                        for c in columns if c != "relative_drop") + " |")
    learned = [p for p in policies if p not in ("scripted", "random")]
    if len(policies) > 1 and learned:
        ref = learned[0]
        groups = [(c, [c]) for c in conditions] + ([("OOD avg", ood)] if ood and IN_DOMAIN in conditions else [])
        lines += ["", f"## {ref} against each other policy: paired difference in success on the same scenes", "",
                  f"Mean of ({ref} - other) over episodes with the same task, condition and seed, with a normal 95% "
                  "interval of the paired differences and the number of pairs.", "",
                  "| other | " + " | ".join(name for name, _ in groups) + " |", "|---" * (len(groups) + 1) + "|"]
        for other in [p for p in policies if p != ref]:
            vals = []
            for _, conds in groups:
                d = paired_difference(outcomes(records, ref, conds), outcomes(records, other, conds))
                vals.append("-" if not d["pairs"] else
                            f"{d['difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] n={d['pairs']}")
            lines.append(f"| {other} | " + " | ".join(vals) + " |")
    for p in policies:
        lines += ["", f"## {p}: success / transit / interaction given transit, per task", "",
                  "| task | " + " | ".join(conditions) + " |", "|---" * (len(conditions) + 1) + "|"]
        for t in tasks:
            vals = []
            for c in conditions:
                m = cells.get((p, t, c))
                vals.append("-" if m is None else f"{_fmt(m['success'])} / {_fmt(m['transit'])} / "
                                                  f"{_fmt(m['interaction'])} (n={m['episodes']}, "
                                                  f"{m['transits']} transited)")
            lines.append(f"| {t} | " + " | ".join(vals) + " |")
    # gated policies: both experts acted somewhere in their episodes
    routed = [p for p in policies
              if {"predictive", "reactive"} <= {e for r in records if r["policy"] == p for e in r["expert_steps"]}]
    if routed:
        lines += ["", "## Closed-loop routing against the `proximity` phase labels of the visited states", "",
                  "Steps where the gate chose the predictive expert exactly on interaction-labelled steps (agreement), "
                  "and the predictive share within interaction and within transit steps; means over episodes.", "",
                  "| policy | condition | agreement | predictive in interaction | predictive in transit | episodes |",
                  "|---|---|---|---|---|---|"]
        for p in routed:
            for c in conditions:
                rs = [r for r in records if r["policy"] == p and r["condition"] == c and "gate_agreement" in r]
                if rs:
                    cols = [nanmean([v for v in (r[k] for r in rs) if v is not None])
                            for k in ("gate_agreement", "predictive_in_interaction", "predictive_in_transit")]
                    lines.append(f"| {p} | {c} | " + " | ".join(_fmt(v) for v in cols) + f" | {len(rs)} |")
    lines += ["", "## Speed (env steps per second of one environment process)", "",
              "With policy inference: the environment's time plus each step's share of the batched policy call.", "",
              "| policy | steps | environment only | with policy inference |", "|---|---|---|---|"]
    for p, s in sp.items():
        lines.append(f"| {p} | {s['steps']} | {_fmt(s['env_steps_per_s'])} | {_fmt(s['steps_per_s_with_policy'])} |")
    run = None
    if ran:
        run = {"episodes": ran, "env_steps": ran_steps, "wall_s": round(wall_s, 2), "mode": where,
               "env_steps_per_s": round(ran_steps / wall_s, 2) if wall_s else None}
        lines += ["", f"This run: {ran} episodes, {ran_steps} environment steps in {wall_s:.0f} s wall-clock: "
                      f"{run['env_steps_per_s']} steps per second over all environments, policy inference "
                      f"included" + (f" ({where})." if where else ".")]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    summary = {"summary": rows, "cells": {"/".join(k): v for k, v in cells.items()}, "speed": sp,
               "episodes": len(records), "out": str(out), "run": run}
    summary = json_safe(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print("\n".join(lines), flush=True)
    return summary
