"""The main job end to end on built-in defaults: data, world model, experts and gate, closed-loop evaluation.

Steps: the two data regimes (``demos``, ``wm_video``), stages 0-1
(``experiments/world_model.yaml``), stage 2 (``experiments/harmowam.yaml``) and the
plain behaviour-cloning baseline on the same demonstrations
(``experiments/bc_baseline.yaml``), the ``metaworld6`` evaluation of both beside the
scripted and random references (``harmowam eval``), and ``report.json`` with every
stage's final validation metrics and the evaluation summary. The baseline is in
every table so that it shows what the world model adds.

Every step skips work that is already done (a dataset folder with ``meta.json``, an
exported world model, a trained policy, finished evaluation episodes), so a rerun
after an interruption resumes. A training run counts as done when its ``lightning fit``
returned (``finished.json`` in its run folder, with the resolved config it trained
on); one that was killed continues from its ``last.ckpt`` (written every 100 steps) in
the same run folder. A finished run whose config has changed since (a new default
pulled, an edited YAML or preset) is not taken as done: the command stops and names
what changed, since that run's policy and its evaluation episodes stand for the old
config; so does a killed run asked to continue under another config than it was started
with (``runs/<name>/started.json``). Stages run as ``lightning fit`` subprocesses of the
shipped configs, exactly as a user would run them. Each preset works in its own folder
(``runs/pipeline/<preset>`` by default), so presets never mix their data.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harmowam.data.format import DatasetError
from harmowam.files import write_text_atomic
from harmowam.sim.env import DEFAULT_IMAGE_SIZE  # a preset that names no frame side renders at it
from harmowam.sim.generate import PRESETS, GenerationConfig, generate
from harmowam.sim.tasks import list_tasks
from harmowam.sim.variations import SceneVariation

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
WORLD_MODEL_EXPORT = Path("checkpoints/world_model")  # where world_model.yaml exports, read by stage 2

#: the stage-2 configs every preset trains on the demonstrations and evaluates, by run name
POLICIES = ("harmowam", "bc_baseline")

#: pipeline presets: tasks and episodes per regime, frame side (``image_size``, optional), `lightning` overrides per stage, evaluation size
PIPELINES: dict[str, dict[str, Any]] = {
    # The shipped configs as they are, all six tasks, 10 episodes per cell.
    "default": {"tasks": None, "episodes": None, "world_model_overrides": [], "policy_overrides": {},
                "eval": {"episodes": 10}},
    # Three tasks, 50 demonstrations and 20 video episodes per task, 48 px frames, short stages, 10 episodes per
    # cell (50 demonstrations instead of 20 took push from 2/20 to 7/20 on one world model: docs/stage2_recipe.md;
    # 48 px instead of 64: 26 minutes instead of 41 on 2 cores, the same in-domain success: README, "What was
    # tried"). Budgets are optimiser steps, so that the policy is the same on any machine; a wall-clock cap ends a
    # stage only on a machine far slower than those measured.
    "quick": {"tasks": ["push", "drawer-open", "button-press-topdown"], "episodes": {"demos": 50, "wm_video": 20},
              "image_size": 48,
              "world_model_overrides": ["--trainer.max_steps=750", "--trainer.max_time=00:00:30:00",
                                        "--model.init_args.vae_steps=200", "--trainer.val_check_interval=150"],
              "policy_overrides": {
                  "harmowam": ["--trainer.max_steps=1250", "--trainer.max_time=00:00:30:00",
                               "--trainer.val_check_interval=250",
                               "--model.init_args.world_model_cache={samples_per_frame: 1}"],
                  "bc_baseline": ["--trainer.max_steps=1500", "--trainer.max_time=00:00:15:00",
                                  "--trainer.val_check_interval=500"]},
              "eval": {"episodes": 10}},
    # Minutes: checks that every step runs, nothing more.
    "smoke": {"tasks": ["push", "drawer-open"], "episodes": 3,
              "world_model_overrides": ["--trainer.max_steps=30", "--model.init_args.vae_steps=15",
                                        "--trainer.val_check_interval=30", "--trainer.limit_val_batches=2"],
              "policy_overrides": {name: ["--trainer.max_steps=10", "--trainer.val_check_interval=10",
                                          "--trainer.limit_val_batches=2"] for name in POLICIES},
              "eval": {"episodes": 1, "conditions": "in_domain,background", "max_steps": 100}},
}


def lightning_executable() -> Path:
    """The ``lightning`` console script of this interpreter's environment."""
    return Path(sys.executable).parent / "lightning"


def _lightning(config: Path, workdir: Path, overrides: list[str], log: Path | None = None) -> None:
    """``lightning fit`` in ``workdir``; its output goes to ``log`` (appended) where one is given."""
    if log is not None or not sys.stdout.isatty():  # a log file: plain progress lines instead of a redrawn bar
        overrides = ["--trainer.enable_progress_bar=false",
                     "--trainer.callbacks+=harmowam.progress.PlainProgress", *overrides]
    cmd = [str(lightning_executable()), "fit", "-c", str(config), *overrides]
    print("$ " + " ".join(cmd), flush=True)
    if log is None:
        subprocess.run(cmd, cwd=workdir, check=True)
        return
    with open(log, "a") as out:
        subprocess.run(cmd, cwd=workdir, check=True, stdout=out, stderr=subprocess.STDOUT)


#: written into a run folder when its ``lightning fit`` returned: the run is finished, not merely checkpointed
FINISHED = "finished.json"
#: ``runs/<name>/started.json``: the resolved config of the run of that name now in progress (removed when it
#: finishes), so that a killed run is continued only under the config it was started with
STARTED = "started.json"


def latest_run(workdir: Path, name: str, save_dir: str | Path = "runs") -> Path | None:
    runs = sorted((workdir / save_dir / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    return runs[-1] if runs else None


def final_metrics(run: Path) -> dict[str, float]:
    """The last value of every scalar a run logged to TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return {tag: acc.Scalars(tag)[-1].value for tag in acc.Tags()["scalars"]}


def sized(spec: dict[str, Any], image_size: int | None) -> tuple[dict[str, Any], str]:
    """A preset with its frame side replaced by ``image_size`` (None: as it is), and the suffix its default folder
    takes then (``_64px``), so that runs at two sizes of one preset never share a folder."""
    if image_size is None or image_size == spec.get("image_size", DEFAULT_IMAGE_SIZE):
        return spec, ""
    return {**spec, "image_size": image_size}, f"_{image_size}px"


def default_workdir(preset: str, suffix: str = "") -> Path:
    return Path("runs") / "pipeline" / f"{preset}{suffix}"


def regime_episodes(spec: dict[str, Any], regime: str) -> int:
    """Episodes per task of a data regime: the preset's number, its number for this regime (a mapping), or the
    regime's own default (None, or a mapping without the regime)."""
    episodes = spec["episodes"]
    if isinstance(episodes, dict):
        episodes = episodes.get(regime)
    return episodes or PRESETS[regime]["episodes"]


def _check_finished_data(out: Path, tasks: list[str], episodes: int, image_size: int, label: str) -> None:
    """A finished data folder is reused only if it holds what this preset asks for: one made by another preset
    (or by an older version of this one, with 20 demonstrations per task) would silently train everything after
    it on other data, and the steps after it would be skipped as done as well. The same holds for the frame side."""
    meta = json.loads((out / "meta.json").read_text())
    generation = meta.get("generation") or {}
    have_tasks, have_episodes = generation.get("tasks"), generation.get("episodes_per_task")
    if have_tasks is None or have_episodes is None:
        return  # not made by `harmowam data generate`: the user's own folder, taken as it is
    have_size = meta["keys"]["image"]["shape"][0]
    if list(have_tasks) != list(tasks) or have_episodes != episodes or have_size != image_size:
        raise DatasetError(f"[{label}] {out} holds {have_episodes} episodes per task of {', '.join(have_tasks)} at "
                           f"{have_size} px, but this run asks for {episodes} of {', '.join(tasks)} at {image_size} px; "
                           f"the world model and policies in "
                           f"{out.parents[1]} were trained on it too: give another --workdir, or delete that folder "
                           "and rerun")


def prepare_data_and_world_model(workdir: Path, spec: dict[str, Any], workers: int, label: str) -> list[str]:
    """Both data regimes and the exported world model in ``workdir`` (each skipped when done); returns the tasks."""
    workdir.mkdir(parents=True, exist_ok=True)
    tasks = spec["tasks"] or list_tasks()
    print(f"[{label}] in {workdir}: tasks {', '.join(tasks)}", flush=True)
    image_size = spec.get("image_size", DEFAULT_IMAGE_SIZE)
    for regime, p in PRESETS.items():
        out = workdir / "data" / regime
        episodes = regime_episodes(spec, regime)
        if (out / "meta.json").is_file():
            _check_finished_data(out, tasks, episodes, image_size, label)
            print(f"[data] {out} exists, skipping")
            continue
        cfg = GenerationConfig(tasks=tasks, episodes=episodes, seed=p["seed"], image_size=image_size,
                               variation=SceneVariation(**p["variation"]), workers=workers,
                               action_noise=p.get("action_noise", 0.0))
        try:
            generate(out, cfg, preset=regime)  # a killed generation continues
        except (FileExistsError, DatasetError) as exc:  # its advice names --overwrite, which this command lacks
            raise type(exc)(f"{exc}\n[{label}] {out} cannot be continued by this run: delete that folder and rerun "
                            "(or give another --workdir)") from exc
    config, overrides = EXPERIMENTS / "world_model.yaml", spec["world_model_overrides"]
    if not (workdir / WORLD_MODEL_EXPORT / "world_model.json").is_file():
        train_run(workdir, "world_model", config, overrides)
    else:
        run = latest_run(workdir, "world_model")  # none where the export was taken over by `compare --reuse`
        if run is not None and (run / FINISHED).is_file():
            _check_finished_run(run, "world_model", resolved_config(config, overrides))
        print(f"[world model] {workdir / WORLD_MODEL_EXPORT} exists, skipping")
    return tasks


#: trainer settings that change how a run reports, not what it trains: left out when a finished run is checked
PRESENTATION_KEYS = ("logger", "callbacks", "enable_progress_bar", "enable_model_summary", "log_every_n_steps")


class RunConfigChanged(ValueError):
    """A finished training run was made with another config than the one asked for now."""


def resolved_config(config: Path, overrides: list[str]) -> dict[str, Any]:
    """What ``lightning fit -c config *overrides`` trains, as ``--print_config`` resolves it (bases merged,
    defaults filled in), less the trainer's presentation settings and the checkpoint a killed run resumed from."""
    import yaml

    from harmowam.cli import build_cli

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            build_cli(["fit", "-c", str(config), *overrides, "--print_config"])
        except SystemExit as exc:  # --print_config exits after printing; a bad config exits with its error
            if exc.code not in (0, None):
                raise
    resolved = yaml.safe_load(out.getvalue())
    for key in PRESENTATION_KEYS:
        resolved.get("trainer", {}).pop(key, None)
    resolved.pop("ckpt_path", None)
    return resolved


def config_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs, as ``key: old -> new``."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [change for key in sorted(set(old) | set(new), key=str)
                for change in config_changes(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def _shown(changes: list[str], most: int = 8) -> str:
    return "\n  ".join(changes[:most]) + (f"\n  ... and {len(changes) - most} more" if len(changes) > most else "")


def _recorded_changes(record: Path, wanted: dict[str, Any]) -> list[str] | None:
    """What differs between the resolved config a run record (``finished.json``, ``started.json``) holds and
    ``wanted``; None where there is no such record (made by an older harmowam)."""
    recorded = json.loads(record.read_text()) if record.is_file() else {}
    return config_changes(recorded["resolved"], wanted) if "resolved" in recorded else None


def _check_finished_run(run: Path, name: str, wanted: dict[str, Any]) -> None:
    changes = _recorded_changes(run / FINISHED, wanted)
    if changes is None:  # finished before runs recorded their config: taken as it is
        print(f"[{name}] {run} records no resolved config (trained by an older harmowam): not checked", flush=True)
    elif changes:
        raise RunConfigChanged(
            f"[{name}] {run} finished with another config than this run asks for:\n  {_shown(changes)}\n"
            f"It, and whatever was trained or evaluated on it, stands for the old config, so it is neither reused "
            f"nor replaced: give another --workdir, or move {run.parent} aside (with what was made from it: "
            "evaluation episodes, policies on a world model) and rerun to train it here.")


def _check_started_run(run: Path, started: Path, name: str, wanted: dict[str, Any]) -> None:
    """A killed run continues only under the config it was started with: otherwise its steps so far and the
    rest would be one policy trained under two configs."""
    changes = _recorded_changes(started, wanted)
    if changes is None:  # killed before runs recorded their config at the start
        print(f"[{name}] {run} records no config it was started with (an older harmowam): not checked", flush=True)
    elif changes:
        raise RunConfigChanged(
            f"[{name}] {run} did not finish and was started with another config than this run asks for:\n  "
            + _shown(changes) + "\nContinuing it would train one policy under two configs: give another "
            f"--workdir, or move {run.parent} aside and rerun to train it from the start.")


def train_run(workdir: Path, name: str, config: Path, overrides: list[str], save_dir: str | Path = "runs",
              log: Path | None = None) -> Path:
    """``lightning fit`` of ``config`` as run ``name`` (its logger writing to ``workdir/save_dir/name``) unless
    its latest run finished with the same resolved config (:class:`RunConfigChanged` if it finished with another);
    a run that was killed continues from its ``last.ckpt``. Returns the run folder."""
    wanted = resolved_config(config, overrides)
    run = latest_run(workdir, name, save_dir)
    if run is not None and (run / FINISHED).is_file():
        _check_finished_run(run, name, wanted)
        print(f"[{name}] {run} is trained, skipping")
        return run
    started = workdir / save_dir / name / STARTED
    last = run / "checkpoints" / "last.ckpt" if run is not None else None
    if last is not None and last.is_file():
        _check_started_run(run, started, name, wanted)
        print(f"[{name}] {run} did not finish (no {FINISHED}): continuing from {last}", flush=True)
        overrides = [*overrides, f"--ckpt_path={last}"]  # cli._continue_logged_run keeps the run folder
    started.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(started, json.dumps({"config": str(config), "resolved": wanted}, indent=1))
    _lightning(config, workdir, overrides, log)
    run = latest_run(workdir, name, save_dir)
    assert run is not None
    write_text_atomic(run / FINISHED, json.dumps({"config": str(config), "overrides": overrides,
                                                  "resolved": wanted}, indent=1))
    started.unlink()
    return run


def train_policy(workdir: Path, name: str, config: Path, overrides: list[str]) -> Path:
    """A stage-2 run (:func:`train_run`); prints where its checkpoint is."""
    run = train_run(workdir, name, config, overrides)
    print(f"[policy] {name}: {run / 'checkpoints' / 'last.ckpt'}", flush=True)
    return run


def run_pipeline(workdir: str | Path | None = None, preset: str = "default", workers: int = 2,
                 image_size: int | None = None) -> dict[str, Any]:
    from harmowam.eval.policies import default_device
    from harmowam.eval.runner import EvalConfig, PolicySpec, evaluate

    if preset not in PIPELINES:
        raise ValueError(f"unknown pipeline preset '{preset}'; presets: {', '.join(PIPELINES)}")
    spec, suffix = sized(PIPELINES[preset], image_size)
    workdir = Path(workdir if workdir is not None else default_workdir(preset, suffix)).resolve()
    tasks = prepare_data_and_world_model(workdir, spec, workers, label=f"pipeline preset '{preset}'")
    run = latest_run(workdir, "world_model")
    assert run is not None
    policy_runs = {name: train_policy(workdir, name, EXPERIMENTS / f"{name}.yaml",
                                      spec["policy_overrides"].get(name, [])) for name in POLICIES}
    ev = spec["eval"]
    eval_cfg = EvalConfig(tasks=tasks, conditions=ev.get("conditions", "all"), episodes=ev["episodes"],
                          max_steps=ev.get("max_steps"), workers=workers, envs=4 * workers, out=workdir / "eval")
    policies = [PolicySpec("checkpoint", path=str(r / "checkpoints" / "last.ckpt"), name=name,
                           device=default_device()) for name, r in policy_runs.items()]
    summary = evaluate(policies + [PolicySpec("scripted"), PolicySpec("random")], eval_cfg)
    report: dict[str, Any] = {"preset": preset, "world_model_run": str(run),
                              **{f"{name}_run": str(r) for name, r in policy_runs.items()}}
    for key, r in (("world_model", run), *policy_runs.items()):
        metrics = final_metrics(r)
        report[key] = {k: round(metrics[k], 5) for k in sorted(metrics) if k.startswith("val/")}
    report["eval"] = {"out": summary["out"], "summary": summary["summary"], "speed": summary["speed"]}
    (workdir / "report.json").write_text(json.dumps(report, indent=1))
    print(f"[pipeline] wrote {workdir / 'report.json'}; evaluation table: {workdir / 'eval' / 'results.md'}")
    return report
