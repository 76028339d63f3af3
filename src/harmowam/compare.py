"""The paradigm comparison as one command (``harmowam compare --preset cpu``): the paper's tables at simulation scale.

Steps: the pipeline's data and one world model; every paradigm, baseline and ablation
config trained at one budget with several training seeds (run ``<config>_s<seed>``);
one evaluation of all of them and of the scripted and random references on the same
scenes; then ``tables/``: Table 3 (success in-domain, per OOD condition, OOD average,
relative drop, mean over training seeds with their spread and the episodes behind
each cell, 95% Wilson intervals of the pooled rate), Table 1 (transit and interaction
given transit per paradigm and condition), the ablation table, HarmoWAM's paired
differences against each other config, and a plot (PNG and TensorBoard).

Every step skips finished work (datasets, the world model, trained runs, evaluated
episodes), so a rerun after it finished does nothing and a rerun after a kill resumes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

from harmowam.eval.statistics import nanmean, outcomes, paired_difference, wilson_interval
from harmowam.pipeline import PIPELINES

#: run name -> experiment config, relative to experiments/
CONFIGS = {
    "harmowam": "harmowam.yaml", "imagine_then_execute": "imagine_then_execute.yaml",
    "joint_modeling": "joint_modeling.yaml", "vla_baseline": "vla_baseline.yaml", "bc_baseline": "bc_baseline.yaml",
    "average": "ablations/average.yaml", "keyframe_average": "ablations/keyframe_average.yaml",
    "predictive_without_latent": "ablations/predictive_without_latent.yaml",
    "reactive_without_latent": "ablations/reactive_without_latent.yaml",
}
PARADIGMS = ("harmowam", "imagine_then_execute", "joint_modeling")
BASELINES = ("vla_baseline", "bc_baseline")
ABLATIONS = ("average", "keyframe_average", "predictive_without_latent", "reactive_without_latent")
REFERENCES = ("scripted", "random")

COMPARISONS: dict[str, dict[str, Any]] = {
    # The quick pipeline's three tasks, data and world model (so a finished `harmowam pipeline --preset quick`
    # folder can be reused: see `--reuse`), 600 optimiser steps per run (the same budget for every config,
    # whatever its cost per step; the 10-minute cap binds only on a far slower machine), 2 seeds, 3 episodes
    # per task and condition (9 per condition and seed, 18 per cell over seeds). Each run starts with its own
    # seed_everything.
    "cpu": {"tasks": PIPELINES["quick"]["tasks"], "episodes": PIPELINES["quick"]["episodes"],
            "image_size": PIPELINES["quick"]["image_size"],
            "world_model_overrides": PIPELINES["quick"]["world_model_overrides"], "configs": list(CONFIGS), "seeds": [0, 1],
            "policy_overrides": ["--trainer.max_steps=600", "--trainer.max_time=00:00:10:00",
                                 "--trainer.val_check_interval=300",
                                 "--model.init_args.world_model_cache={samples_per_frame: 1}"],
            "eval": {"episodes": 3}},
    # One GPU lease (30 minutes of device time): six tasks, the four configs the paper's Table 1 needs,
    # one seed, 10 episodes per cell.
    "gpu": {"tasks": None, "episodes": 50, "world_model_overrides": ["--trainer.max_time=00:00:06:00"],
            "configs": ["harmowam", "imagine_then_execute", "joint_modeling", "bc_baseline"], "seeds": [0],
            "policy_overrides": ["--trainer.max_time=00:00:03:00"],
            "eval": {"episodes": 10, "envs": 48}},  # 48 episodes in flight: batched inference on the GPU
    # Minutes: every step runs (CI's slow test).
    "smoke": {"tasks": ["push", "drawer-open"], "episodes": 3,
              "world_model_overrides": ["--trainer.max_steps=20", "--model.init_args.vae_steps=10",
                                        "--trainer.val_check_interval=20", "--trainer.limit_val_batches=2"],
              "configs": ["harmowam", "bc_baseline"], "seeds": [0, 1],
              "policy_overrides": ["--trainer.max_steps=6", "--trainer.val_check_interval=6",
                                   "--trainer.limit_val_batches=2"],
              "eval": {"episodes": 1, "conditions": "in_domain,background", "max_steps": 60}},
}


def run_name(config: str, seed: int) -> str:
    return f"{config}_s{seed}"


def config_of(policy: str) -> str:
    """``harmowam_s1`` -> ``harmowam``; references keep their name."""
    head, _, tail = policy.rpartition("_s")
    return head if head and tail.isdigit() else policy


def reuse_pipeline_outputs(source: str | Path, workdir: Path) -> list[str]:
    """Hard-link (or copy) the data, exported world model and world-model cache of a finished pipeline folder
    into ``workdir`` where it has none; returns what was taken. The data are checked against the preset after."""
    from harmowam.pipeline import WORLD_MODEL_EXPORT
    from harmowam.policy_module import DEFAULT_CACHE_DIR
    from harmowam.sim.generate import PRESETS

    source = Path(source).resolve()
    if not (source / WORLD_MODEL_EXPORT / "world_model.json").is_file():
        raise FileNotFoundError(f"--reuse {source}: no exported world model there ({WORLD_MODEL_EXPORT}); "
                                "give the folder of a finished `harmowam pipeline` run")
    taken = []
    for rel in [*(f"data/{regime}" for regime in PRESETS), str(WORLD_MODEL_EXPORT), DEFAULT_CACHE_DIR]:
        src, dst = source / rel, workdir / rel
        if src.is_dir() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            # a cache build killed midway leaves its `<key>.tmp-<pid>` folder behind: not a cache, not taken
            shutil.copytree(src, dst, copy_function=_link_or_copy, ignore=shutil.ignore_patterns("*.tmp-*"))
            taken.append(rel)
    return taken


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # every file there is written once and replaced, never edited in place
    except OSError:
        shutil.copy2(src, dst)


def run_compare(preset: str = "cpu", workdir: str | Path | None = None, workers: int = 2,
                reuse: str | Path | None = None, image_size: int | None = None) -> dict[str, Any]:
    from harmowam.eval.policies import default_device
    from harmowam.eval.runner import EvalConfig, PolicySpec, evaluate
    from harmowam.pipeline import EXPERIMENTS, prepare_data_and_world_model, sized, train_policy

    if preset not in COMPARISONS:
        raise ValueError(f"unknown comparison preset '{preset}'; presets: {', '.join(COMPARISONS)}")
    spec, suffix = sized(COMPARISONS[preset], image_size)
    workdir = Path(workdir if workdir is not None else Path("runs") / "compare" / f"{preset}{suffix}").resolve()
    if reuse is not None:
        taken = reuse_pipeline_outputs(reuse, workdir)
        print(f"[compare '{preset}'] from {reuse}: {', '.join(taken) or 'nothing (all present)'}", flush=True)
    tasks = prepare_data_and_world_model(workdir, spec, workers, label=f"compare '{preset}'")
    checkpoints: dict[str, Path] = {}
    for config in spec["configs"]:
        for seed in spec["seeds"]:
            name = run_name(config, seed)
            overrides = [f"--seed_everything={seed}", f"--trainer.logger.init_args.name={name}",
                         *spec["policy_overrides"]]
            checkpoints[name] = train_policy(workdir, name, EXPERIMENTS / CONFIGS[config], overrides) / "checkpoints" / \
                "last.ckpt"
    ev = spec["eval"]
    cfg = EvalConfig(tasks=tasks, conditions=ev.get("conditions", "all"), episodes=ev["episodes"],
                     max_steps=ev.get("max_steps"), workers=workers, envs=ev.get("envs", 4 * workers),
                     out=workdir / "eval")
    device = ev.get("device") or default_device()
    policies = [PolicySpec("checkpoint", path=str(c), name=n, device=device) for n, c in checkpoints.items()]
    evaluate(policies + [PolicySpec(r) for r in REFERENCES], cfg)
    from harmowam.eval.records import EpisodeLog

    from harmowam.provenance import provenance

    records = list(EpisodeLog(workdir / "eval" / "episodes.jsonl"))
    source = {**provenance("harmowam"), "preset": preset, "spec": spec}
    tables = write_tables(records, workdir / "tables", title=f"harmowam compare --preset {preset}", source=source)
    print(f"[compare] tables in {workdir / 'tables'}", flush=True)
    return tables


# -- tables ------------------------------------------------------------------------------------------
def _cell(records: list[dict[str, Any]], config: str, condition: str) -> dict[str, Any]:
    """One config under one condition: per-seed success rates (tasks pooled), their mean and spread, the pooled
    rate's Wilson interval, and transit and interaction given transit over all its episodes."""
    rs = [r for r in records if config_of(r["policy"]) == config and r["condition"] == condition]
    seeds = sorted({r["policy"] for r in rs})
    per_seed = [nanmean([float(r["success"]) for r in rs if r["policy"] == s]) for s in seeds]
    n, k = len(rs), sum(bool(r["success"]) for r in rs)
    transited = [r for r in rs if r["transit"]]
    mean = nanmean(per_seed)
    spread = (max(per_seed) - min(per_seed)) / 2 if len(per_seed) > 1 else 0.0
    lo, hi = wilson_interval(k, n)
    return {"episodes": n, "seeds": len(seeds), "successes": k, "mean": mean, "spread": spread, "low": lo, "high": hi,
            "transit": len(transited) / n if n else float("nan"), "transits": len(transited),
            "interaction": (sum(bool(r["success"]) for r in transited) / len(transited)) if transited else float("nan")}


def _fmt_cell(c: dict[str, Any]) -> str:
    if not c["episodes"]:
        return "-"
    spread = f" ± {c['spread']:.2f}" if c["seeds"] > 1 else ""
    return f"{c['mean']:.2f}{spread} [{c['low']:.2f}, {c['high']:.2f}] n={c['episodes']}"


def write_tables(records: list[dict[str, Any]], out: Path, title: str = "", source: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Table 3, Table 1, the ablation table and the paired differences as markdown and CSV, and the plot; with
    ``source`` (:func:`harmowam.provenance.provenance`), how they were made, in provenance.json and the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    present = {config_of(r["policy"]) for r in records}
    configs = [c for c in (*PARADIGMS, *BASELINES, *ABLATIONS, *REFERENCES) if c in present]
    conditions = list(dict.fromkeys(r["condition"] for r in records))
    ood = [c for c in conditions if c != "in_domain"]
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for config in configs:
        row = {c: _cell(records, config, c) for c in conditions}
        ood_eps = [r for r in records if config_of(r["policy"]) == config and r["condition"] in ood]
        pooled = _cell([{**r, "condition": "ood"} for r in ood_eps], config, "ood")
        pooled["mean"] = nanmean([row[c]["mean"] for c in ood])  # the paper's OOD average: mean of conditions
        row["ood_avg"] = pooled
        table[config] = row
    lines = [f"# {title}".rstrip(), "",
             "Success: mean over training seeds ± half their range, [95% Wilson interval of the pooled rate], "
             "episodes behind the cell (tasks, scenes and seeds pooled). Every config ran on the same scenes.", "",
             "## Table 3: success per condition", "",
             "| config | " + " | ".join([*conditions, "OOD avg", "drop from ID"]) + " |",
             "|---" * (len(conditions) + 3) + "|"]
    csv_rows = []
    for config, row in table.items():
        id_mean, ood_mean = row.get("in_domain", {}).get("mean", float("nan")), row["ood_avg"]["mean"]
        drop = (id_mean - ood_mean) / id_mean if id_mean and not math.isnan(id_mean) else float("nan")
        if config in ABLATIONS:
            continue
        lines.append(f"| {config} | " + " | ".join(_fmt_cell(row[c]) for c in [*conditions, "ood_avg"])
                     + f" | {'-' if math.isnan(drop) else f'{drop:.1%}'} |")
    for config, row in table.items():
        for c in [*conditions, "ood_avg"]:
            csv_rows.append({"config": config, "condition": c, **{k: row[c][k] for k in
                             ("mean", "spread", "low", "high", "episodes", "seeds", "transit", "interaction")}})
    lines += ["", "## Table 1: transit, and interaction given transit", "",
              "Transit: the hand reached the object or moved it (`eval.rollout.transit_step`); interaction: success "
              "among the episodes that transited.", "",
              "| config | " + " | ".join(f"{c} transit | {c} interaction" for c in conditions) + " |",
              "|---" * (2 * len(conditions) + 1) + "|"]
    for config in (c for c in configs if c not in ABLATIONS):
        cells = [f"{t['transit']:.2f} (n={t['episodes']}) | {t['interaction']:.2f} (n={t['transits']})"
                 for t in (table[config][c] for c in conditions)]
        lines.append(f"| {config} | " + " | ".join(cells) + " |")
    ablations = [c for c in configs if c in ABLATIONS]
    if ablations:
        lines += ["", "## Ablations (HarmoWAM's components)", "",
                  "| config | " + " | ".join([*conditions, "OOD avg"]) + " |", "|---" * (len(conditions) + 2) + "|"]
        for config in ["harmowam", *ablations]:
            if config in table:
                lines.append(f"| {config} | " + " | ".join(_fmt_cell(table[config][c]) for c in [*conditions, "ood_avg"])
                             + " |")
    if "harmowam" in table:
        groups = [(c, [c]) for c in conditions] + ([("OOD avg", ood)] if ood else [])
        lines += ["", "## HarmoWAM against each config: paired difference on the same scenes", "",
                  "Mean of (HarmoWAM - other) over episodes of the same task, condition, scene seed and training "
                  "seed, with a normal 95% interval and the number of pairs.", "",
                  "| other | " + " | ".join(g for g, _ in groups) + " |", "|---" * (len(groups) + 1) + "|"]
        for other in (c for c in configs if c != "harmowam"):
            vals = []
            for _, conds in groups:
                a = _outcomes_by_seed(records, "harmowam", conds)
                if other in REFERENCES:  # no training seeds: the same scene's outcome pairs with every seed's
                    ref = outcomes(records, other, conds)
                    b = {k: ref[k[1:]] for k in a if k[1:] in ref}
                else:
                    b = _outcomes_by_seed(records, other, conds)
                d = paired_difference(a, b)
                vals.append("-" if not d["pairs"] else f"{d['difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] "
                                                        f"n={d['pairs']}")
            lines.append(f"| {other} | " + " | ".join(vals) + " |")
    if source is not None:
        v = source["versions"]
        lines += ["", "## How these numbers were made", "",
                  f"`{source['command']}` at commit `{source['commit']}` on {source['date']}; {source['cpu']} "
                  f"({source['cpu_count']} cores); python {source['python']}, "
                  + ", ".join(f"{k} {v[k]}" for k in v if v[k]) + ". The preset's settings are in provenance.json."]
        (out / "provenance.json").write_text(json.dumps(source, indent=1))
    (out / "tables.md").write_text("\n".join(lines) + "\n")
    with open(out / "tables.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(csv_rows[0]) if csv_rows else ["config"])
        w.writeheader()
        w.writerows(csv_rows)
    plot(table, [*conditions, "ood_avg"], out)
    (out / "tables.json").write_text(json.dumps(table, indent=1, default=float))
    print("\n".join(lines), flush=True)
    return table


def _outcomes_by_seed(records: list[dict[str, Any]], config: str, conditions: list[str]) -> dict[Any, bool]:
    """``{(training run's seed suffix, task, condition, scene seed): success}`` over a config's seeds."""
    out = {}
    for policy in sorted({r["policy"] for r in records if config_of(r["policy"]) == config}):
        suffix = policy[len(config):]
        out.update({(suffix, *k): v for k, v in outcomes(records, policy, conditions).items()})
    return out


def plot(table: dict[str, dict[str, dict[str, Any]]], columns: list[str], out: Path) -> Path:
    """Success per condition per config with the Wilson intervals as error bars: PNG and TensorBoard."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    configs = list(table)
    width = 0.8 / max(len(configs), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(columns)) + 2.2, 3.6))
    colors = plt.get_cmap("tab20").colors  # one colour per config: tab10 repeats after ten
    for i, config in enumerate(configs):
        cells = [table[config][c] for c in columns]
        x = np.arange(len(columns)) + (i - (len(configs) - 1) / 2) * width
        mean = np.array([c["mean"] for c in cells])
        err = np.array([[max(m - c["low"], 0), max(c["high"] - m, 0)] for m, c in zip(mean, cells)]).T
        ax.bar(x, mean, width, yerr=err, capsize=2, label=config, color=colors[i % len(colors)])
    ax.set_xticks(np.arange(len(columns)), ["OOD avg" if c == "ood_avg" else c for c in columns])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, never over them
    fig.tight_layout()
    path = out / "success.png"
    fig.savefig(path, dpi=120)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(out / "tensorboard")) as writer:
        writer.add_figure("compare/success", fig)
    plt.close(fig)
    return path
