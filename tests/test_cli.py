"""The commands as a user runs them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, run_cli


def test_harmowam_plugins_lists_builtins_and_the_example_plugin(tmp_path):
    res = run_cli(["harmowam", "plugins"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert any(l.split()[:3] == ["expert", "mlp", "harmowam-mlp-expert"] for l in lines)
    assert any(l.split()[:3] == ["gate", "process_adaptive", "harmowam"] for l in lines)
    assert any(l.split()[:3] == ["world_model", "latent_flow", "harmowam"] for l in lines)


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """`harmowam plugins | head -1`: the reader leaving is not an error worth a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe is block-buffered, as for users
    proc = subprocess.Popen([str(Path(sys.executable).parent / "harmowam"), "plugins"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the command (a second to import) writes its first line
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipeError" not in err, err


def test_data_generate_writes_a_dataset_with_metadata(tmp_path):
    res = run_cli(["harmowam", "data", "generate", "--out", "ds", "--tasks", "button-press-topdown", "--episodes", "2",
                   "--image-size", "32", "--workers", "1", "--background", "train", "--seed", "7"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    gen = meta["generation"]
    assert gen["seed"] == 7 and gen["image_size"] == 32 and gen["variation"]["background"] == "train"
    assert gen["versions"]["metaworld"] and len(meta["episodes"]) == 2
    assert all(e["instruction"] == "press the button from the top" for e in meta["episodes"])
    info = run_cli(["harmowam", "data", "info", "ds"], cwd=tmp_path)
    assert info.returncode == 0 and "button-press-topdown" in info.stdout
    # refuses to overwrite without --overwrite, and the dataset stays readable
    again = run_cli(["harmowam", "data", "generate", "--out", "ds", "--tasks", "push", "--episodes", "1"], cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert json.loads((tmp_path / "ds" / "meta.json").read_text()) == meta


def test_bad_input_gives_one_clear_line(tmp_path, tiny_data):
    res = run_cli(["harmowam", "data", "generate", "--out", "x", "--tasks", "fly"], cwd=tmp_path)
    assert res.returncode == 2 and "unknown task 'fly'" in res.stderr and "push" in res.stderr
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_data, corrupt)
    with open(corrupt / "image.bin", "r+b") as f:
        f.truncate(1000)
    res = run_cli(["harmowam", "data", "info", "corrupt"], cwd=tmp_path)
    assert res.returncode == 2 and "image.bin" in res.stderr and "shape mismatch" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("args, message", [
    (["eval", "--policy", "random", "--workers", "0"], "argument --workers: must be a positive integer, got 0"),
    (["data", "generate", "--out", "x", "--image-size", "7"], "argument --image-size: must be a multiple of 8"),
    (["pipeline", "--preset", "smoke", "--image-size", "7"], "argument --image-size: must be a multiple of 8"),
    (["compare", "--preset", "smoke", "--image-size", "7"], "argument --image-size: must be a multiple of 8"),
])
def test_bad_numbers_are_refused_by_the_option_name(tmp_path, args, message):
    res = run_cli(["harmowam", *args], cwd=tmp_path)
    assert res.returncode == 2 and message in res.stderr


@pytest.mark.parametrize("override, message", [
    ("--model.init_args.gate=nosuch", "lightning: error: unknown gate 'nosuch'. Registered gates: 'process_adaptive'"),
    ("--model.init_args.experts={predictive: {name: predictive, hiden: 64}}",
     "lightning: error: expert 'predictive': unknown option 'hiden'; it accepts width, depth"),
])
def test_a_bad_component_in_a_config_is_one_line(tiny_world_model_run, override, message):
    work = tiny_world_model_run.parents[2]
    res = run_cli(["lightning", "fit", "-c", str(REPO / "tests" / "configs" / "tiny_policy.yaml"), override], cwd=work)
    assert res.returncode != 0
    assert res.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in res.stderr


def test_shipped_config_in_an_empty_folder_names_the_bad_option_then_the_missing_world_model(tmp_path):
    """The components are checked before the world model loads; a missing world model is one line too."""
    config = str(REPO / "experiments" / "harmowam.yaml")
    res = run_cli(["lightning", "fit", "-c", config, "--model.init_args.experts={predictive: {name: predictive, hiden: 64}}"],
                  cwd=tmp_path)
    assert res.stderr.strip().splitlines()[-1].startswith("lightning: error: expert 'predictive': unknown option 'hiden'")
    res = run_cli(["lightning", "fit", "-c", config], cwd=tmp_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("lightning: error: world model 'checkpoints/world_model' does "
                                                          "not exist")


def test_an_integer_limit_counts_batches():
    """jsonargparse reads "--trainer.limit_val_batches=1" as 1.0 (all batches); the CLI passes the integer on."""
    from harmowam.cli import _integer_trainer_fractions

    argv = ["fit", "--trainer.limit_val_batches=1", "--trainer.limit_train_batches", "3",
            "--trainer.val_check_interval=0.5", "--trainer.max_steps=1"]
    assert _integer_trainer_fractions(argv) == {"limit_val_batches": 1, "limit_train_batches": 3}


def test_lightning_fit_world_model_tiny_config(tiny_world_model_run):
    run = tiny_world_model_run
    assert (run / "config.yaml").is_file() and list((run / "checkpoints").glob("*.ckpt"))
    assert (run / "world_model" / "world_model.json").is_file()
    from harmowam.pipeline import final_metrics

    metrics = final_metrics(run)
    assert {"val/pred_mse", "val/copy_baseline_mse", "val/vae_floor_mse", "train/flow_loss"} <= set(metrics)


def test_world_model_fit_ends_saying_whether_it_beats_copying_the_frame(tiny_world_model_run):
    import re

    out = (tiny_world_model_run.parents[2] / "fit_stdout.txt").read_text()
    found = re.search(r"\[world model\] after (\d+) steps, val/pred_over_copy ([0-9.]+): (.*)", out)
    assert found, out[-2000:]
    ratio, verdict = float(found.group(2)), found.group(3)
    assert verdict.startswith("WORSE than copying") == (ratio >= 1)


def test_world_model_config_rejects_mismatched_data(tiny_world_model_run):
    work = tiny_world_model_run.parents[2]
    res = run_cli(["lightning", "fit", "-c", str(REPO / "tests" / "configs" / "tiny_world_model.yaml"),
                   "--data.init_args.future_stride=3", "--trainer.max_steps=1"], cwd=work)
    assert res.returncode != 0 and "stride 3" in res.stderr


def test_sweep_runs_a_grid_skips_finished_runs_and_survives_a_failure(tiny_world_model_run):
    """A sweep trains each run as the pipeline does: finished runs are skipped unless their config changed, a
    failed run is recorded and tried again next time."""
    work = tiny_world_model_run.parents[2]
    sweep = {
        "name": "small",
        "overrides": ["--trainer.max_steps=2", "--trainer.val_check_interval=2"],
        "grid": {"config": [str(REPO / "tests" / "configs" / "tiny_policy.yaml")],
                 "variants": {"ok": [], "broken": ["--model.init_args.gate=no_such_gate"]}},
        "metrics": ["val/policy_action_mse", "val/gate_accuracy"],
    }
    (work / "small.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    res = run_cli(["harmowam", "sweep", "small.yaml"], cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    table = (work / "runs" / "sweeps" / "small" / "results.md").read_text()
    assert "tiny_policy-ok | " in table and "| done |" in table and "failed (exit" in table
    csv = (work / "runs" / "sweeps" / "small" / "results.csv").read_text().splitlines()
    ok = next(l for l in csv if l.startswith("tiny_policy-ok"))
    assert np.isfinite(float(ok.split(",")[-2]))  # a real metric value
    again = run_cli(["harmowam", "sweep", "small.yaml"], cwd=work)
    assert "done (skipped)" in (work / "runs" / "sweeps" / "small" / "results.md").read_text()
    assert "tiny_policy-ok/version_0 is trained, skipping" in again.stdout  # the finished run did not start again
    assert "name=tiny_policy-ok " not in again.stdout
    assert "name=tiny_policy-broken " in again.stdout  # the failed one is tried again
    # an edited sweep asks the finished run for another budget: it stops and names the key, training nothing
    sweep["overrides"][0] = "--trainer.max_steps=3"
    (work / "small.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    changed = run_cli(["harmowam", "sweep", "small.yaml"], cwd=work)
    assert changed.returncode != 0 and "trainer.max_steps: 2 -> 3" in changed.stderr, changed.stderr[-2000:]
    assert not (work / "runs" / "sweeps" / "small" / "tiny_policy-ok" / "version_1").exists()


@pytest.mark.slow
def test_pipeline_smoke_preset_runs_to_its_end(tmp_path):
    """README's main command on a few episodes and steps (minutes: run with -m slow)."""
    res = run_cli(["harmowam", "pipeline", "--preset", "smoke", "--workdir", "."], cwd=tmp_path, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert "val/pred_mse" in report["world_model"] and "val/gate_accuracy" in report["harmowam"]
    assert "val/predictive_action_mse" in report["bc_baseline"]
    rows = {r["policy"]: r for r in report["eval"]["summary"]}
    assert set(rows) == {"harmowam", "bc_baseline", "scripted", "random"} and rows["scripted"]["in_domain"] == 1.0
    assert "| harmowam |" in res.stdout and (tmp_path / "eval" / "results.md").is_file()


def test_lightning_test_and_predict_on_a_trained_checkpoint(tiny_world_model_run):
    work = tiny_world_model_run.parents[2]
    ckpt = str(next((tiny_world_model_run / "checkpoints").glob("*.ckpt")))
    config = str(REPO / "tests" / "configs" / "tiny_world_model.yaml")
    res = run_cli(["lightning", "test", "-c", config, f"--ckpt_path={ckpt}", "--trainer.logger=false"], cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "test/pred_mse" in res.stdout and "test/copy_baseline_mse" in res.stdout
    res = run_cli(["lightning", "predict", "-c", config, f"--ckpt_path={ckpt}", "--trainer.logger=false"], cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
