"""A fit killed with SIGKILL and resumed from last.ckpt continues the uninterrupted run step for step."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import CONFIGS

TESTS = Path(__file__).parent
#: the pipeline's training step on the tiny policy: 12 steps, last.ckpt every 4, as run "run"
PIPELINE_OVERRIDES = ["--trainer.logger.init_args.name=run", "--trainer.max_steps=12",
                      "--trainer.val_check_interval=100",
                      "--trainer.callbacks+=harmowam.training.PeriodicLastCheckpoint",
                      "--trainer.callbacks.every_n_steps=4"]


def _fit(config: Path, work: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [str(Path(sys.executable).parent / "lightning"), "fit", "-c", str(config),
           f"--trainer.logger.init_args.name={name}", "--trainer.max_steps=12", "--trainer.val_check_interval=100",
           "--trainer.callbacks+=harmowam.training.PeriodicLastCheckpoint",
           "--trainer.callbacks.every_n_steps=4", *extra]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600)


def _work_folder(tiny_world_model_run: Path, tmp_path: Path) -> Path:
    """A folder with the tiny data and the tiny world model that stage 2 reads."""
    work = tmp_path / "work"
    source = tiny_world_model_run.parents[2]
    shutil.copytree(source / "data", work / "data")
    shutil.copytree(source / "checkpoints", work / "checkpoints")
    return work


def _losses(run: Path, tag: str) -> dict[int, float]:
    """The last value logged for each step (a resumed run rewrites the steps after its checkpoint)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[int, tuple[float, float]] = {}
    for events in sorted(run.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        if tag not in acc.Tags()["scalars"]:
            continue
        for e in acc.Scalars(tag):
            if e.step not in values or e.wall_time >= values[e.step][0]:
                values[e.step] = (e.wall_time, e.value)
    return {step: v for step, (_, v) in sorted(values.items())}


@pytest.mark.parametrize("stage, config, tags", [
    ("world_model", CONFIGS / "tiny_world_model.yaml", ["train/flow_loss"]),  # the VAE phase ends before step 4
    ("policy", CONFIGS / "tiny_policy.yaml", ["train/loss"]),
])
def test_killed_fit_resumes_to_the_uninterrupted_curve(stage, config, tags, tiny_world_model_run, tmp_path):
    work = _work_folder(tiny_world_model_run, tmp_path)
    whole = _fit(config, work, "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = _fit(config, work, "killed", "--trainer.callbacks+=kill_at_step.KillAtStep",
                  "--trainer.callbacks.step=6")
    assert killed.returncode == -9  # SIGKILL after step 6; last.ckpt holds step 4
    ckpt = work / "runs" / "killed" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    resumed = _fit(config, work, "killed", f"--ckpt_path={ckpt}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (work / "runs" / "killed" / "version_1").exists()  # the same TensorBoard run continues
    assert "not resumable" not in resumed.stderr
    for tag in tags:
        want = _losses(work / "runs" / "whole" / "version_0", tag)
        got = _losses(work / "runs" / "killed" / "version_0", tag)
        after = [s for s in want if s >= 4]
        assert [s for s in got if s >= 4] == after
        np.testing.assert_allclose([got[s] for s in after], [want[s] for s in after], rtol=1e-6)


def test_pipeline_continues_a_killed_run_and_skips_a_finished_one(tiny_world_model_run, tmp_path, capsys):
    """The pipeline's and compare's training step: a run killed after its first last.ckpt is continued in its
    own folder to the end (not taken as trained, not started over), then skipped as finished, unless what it
    would train has changed since."""
    from harmowam.pipeline import FINISHED, RunConfigChanged, train_run
    from harmowam.safe_load import load_checkpoint

    work = _work_folder(tiny_world_model_run, tmp_path)
    config = CONFIGS / "tiny_policy.yaml"
    killed = _fit(config, work, "run", "--trainer.callbacks+=kill_at_step.KillAtStep", "--trainer.callbacks.step=6")
    assert killed.returncode == -9
    run = work / "runs" / "run" / "version_0"
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 4
    overrides = PIPELINE_OVERRIDES
    assert train_run(work, "run", config, overrides) == run
    out = capsys.readouterr().out
    assert "records no config it was started with" in out  # started outside the pipeline: not checked
    assert "did not finish (no finished.json): continuing" in out
    assert (run / FINISHED).is_file() and not (run.parent / "version_1").exists()
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 12
    assert train_run(work, "run", config, overrides) == run
    assert "is trained, skipping" in capsys.readouterr().out
    # how a run reports is not what it trained: still finished
    assert train_run(work, "run", config, [*overrides, "--trainer.log_every_n_steps=3"]) == run
    # another budget or learning rate is another policy: refused by name, nothing retrained or replaced
    changed = r"model\.init_args\.lr: 0\.0003 -> 0\.5\n  trainer\.max_steps: 12 -> 13\n"
    with pytest.raises(RunConfigChanged, match=changed):
        train_run(work, "run", config, [*overrides, "--trainer.max_steps=13", "--model.init_args.lr=0.5"])
    assert not (run.parent / "version_1").exists()
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 12


def test_pipeline_continues_a_killed_run_only_under_the_config_it_started_with(tiny_world_model_run, tmp_path,
                                                                             monkeypatch):
    """A run the pipeline started records its config before training; killed, it is continued under that config
    only: asked for another budget, the command names the change instead of finishing one policy under two."""
    from harmowam.pipeline import FINISHED, STARTED, RunConfigChanged, train_run
    from harmowam.safe_load import load_checkpoint

    work = _work_folder(tiny_world_model_run, tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    config = CONFIGS / "tiny_policy.yaml"
    overrides = PIPELINE_OVERRIDES
    with pytest.raises(subprocess.CalledProcessError):  # SIGKILL after step 6; last.ckpt holds step 4
        train_run(work, "run", config, [*overrides, "--trainer.callbacks+=kill_at_step.KillAtStep",
                                        "--trainer.callbacks.step=6"])
    run, started = work / "runs" / "run" / "version_0", work / "runs" / "run" / STARTED
    assert started.is_file() and not (run / FINISHED).exists()
    with pytest.raises(RunConfigChanged, match=r"did not finish and was started with another config.*\n"
                                               r"  trainer\.max_steps: 12 -> 13\n"):
        train_run(work, "run", config, [*overrides, "--trainer.max_steps=13"])
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 4  # nothing trained
    assert train_run(work, "run", config, overrides) == run  # its own config: continued to the end
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 12
    assert (run / FINISHED).is_file() and not started.exists() and not (run.parent / "version_1").exists()


def test_last_ckpt_is_the_final_step_when_training_ends_between_intervals(tiny_world_model_run, tmp_path):
    """A run of 7 steps with last.ckpt every 3 and a validation at step 5: last.ckpt holds step 7 (it held step 6,
    and the validations' own last went to last-v1.ckpt, which the pipeline never read); so do the shipped configs."""
    import yaml
    from harmowam.safe_load import load_checkpoint

    work = _work_folder(tiny_world_model_run, tmp_path)
    cmd = [str(Path(sys.executable).parent / "lightning"), "fit", "-c", str(CONFIGS / "tiny_policy.yaml"),
           "--trainer.logger.init_args.name=run", "--trainer.max_steps=7", "--trainer.val_check_interval=5",
           "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint", "--trainer.callbacks.save_last=true",
           "--trainer.callbacks.enable_version_counter=false",
           "--trainer.callbacks+=harmowam.training.PeriodicLastCheckpoint", "--trainer.callbacks.every_n_steps=3"]
    res = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    checkpoints = work / "runs" / "run" / "version_0" / "checkpoints"
    assert load_checkpoint(checkpoints / "last.ckpt")["global_step"] == 7
    assert not (checkpoints / "last-v1.ckpt").exists()
    for config in ("world_model.yaml", "base/stage2.yaml"):
        callbacks = yaml.safe_load((TESTS.parent / "experiments" / config).read_text())["trainer"]["callbacks"]
        [checkpoint] = [c for c in callbacks if c["class_path"].endswith("ModelCheckpoint")]
        assert checkpoint["init_args"]["enable_version_counter"] is False, config


def test_pipeline_refuses_a_world_model_trained_on_another_config(tmp_path, capsys):
    """An exported world model is reused only while world_model.yaml and the preset still resolve to what it
    was trained on: after a changed default the pipeline names the key instead of building on the old model."""
    import json

    from harmowam.pipeline import (EXPERIMENTS, FINISHED, PIPELINES, WORLD_MODEL_EXPORT, RunConfigChanged,
                                   prepare_data_and_world_model, resolved_config)

    spec = PIPELINES["smoke"]
    for regime in ("demos", "wm_video"):  # a user's own data folders: taken as they are
        (tmp_path / "data" / regime).mkdir(parents=True)
        (tmp_path / "data" / regime / "meta.json").write_text("{}")
    (tmp_path / WORLD_MODEL_EXPORT).mkdir(parents=True)
    (tmp_path / WORLD_MODEL_EXPORT / "world_model.json").write_text("{}")
    run = tmp_path / "runs" / "world_model" / "version_0"
    run.mkdir(parents=True)
    resolved = resolved_config(EXPERIMENTS / "world_model.yaml", spec["world_model_overrides"])
    (run / FINISHED).write_text(json.dumps({"resolved": resolved}))
    assert prepare_data_and_world_model(tmp_path, spec, workers=1, label="test") == spec["tasks"]
    assert "exists, skipping" in capsys.readouterr().out
    resolved["trainer"]["max_steps"] += 1
    (run / FINISHED).write_text(json.dumps({"resolved": resolved}))
    with pytest.raises(RunConfigChanged, match=r"\[world_model\] .*\n  trainer\.max_steps: 31 -> 30\n"):
        prepare_data_and_world_model(tmp_path, spec, workers=1, label="test")
