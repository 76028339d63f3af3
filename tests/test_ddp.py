"""Both stages train with 2 CPU processes (DDP over gloo) and end with the artefacts of a 1-process run."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import CONFIGS, run_cli

DDP = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]


def test_world_model_and_policy_train_with_two_processes(tiny_world_model_run: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(tiny_world_model_run.parents[2] / "data", work / "data")
    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_world_model.yaml"), *DDP], cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    run = work / "runs" / "tiny_world_model" / "version_0"
    assert (run / "world_model" / "world_model.json").is_file()
    assert (work / "checkpoints" / "world_model" / "world_model.json").is_file()
    assert list((run / "checkpoints").glob("*.ckpt"))
    assert res.stdout.count("[world model] exported") == 1  # by rank 0 only
    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_policy.yaml"), *DDP], cwd=work)  # on that export
    assert res.returncode == 0, res.stderr[-3000:]
    (ckpt,) = (work / "runs" / "tiny_policy" / "version_0" / "checkpoints").glob("*.ckpt")
    from harmowam.eval.policies import load_policy_checkpoint

    policy = load_policy_checkpoint(ckpt)
    assert policy.data_info.get("camera") == "corner4"
