"""A checkpoint whose unpickling would run code is refused, by name, at every entry point."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from conftest import CONFIGS, run_cli


class _Payload:
    """Unpickling this creates ``marker``: a stand-in for any code a crafted file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (Path.touch, (self.marker,))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "hyper_parameters": {"experts": {}}, "normalizer": {}, "payload": _Payload(marker)},
               path)
    return path


def test_the_payload_runs_when_unpickled_unsafely(tmp_path: Path) -> None:
    """The test's own check: without weights_only the file does create the marker."""
    marker = tmp_path / "ran"
    torch.load(crafted_checkpoint(tmp_path / "evil.ckpt", marker), weights_only=False)
    assert marker.exists()


def test_policy_and_world_model_loading_refuse_it(tmp_path: Path) -> None:
    from harmowam.eval.policies import load_policy_checkpoint
    from harmowam.safe_load import UnsafeCheckpointError
    from harmowam.world_models.loading import load_world_model

    marker = tmp_path / "ran"
    ckpt = crafted_checkpoint(tmp_path / "evil.ckpt", marker)
    for load in (load_policy_checkpoint, load_world_model):  # eval --ckpt, stage-2 world_model: PATH
        with pytest.raises(UnsafeCheckpointError, match="evil.ckpt"):
            load(ckpt)
    assert not marker.exists()


def test_eval_command_refuses_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    ckpt = crafted_checkpoint(tmp_path / "evil.ckpt", marker)
    res = run_cli(["harmowam", "eval", "--ckpt", str(ckpt), "--tasks", "push", "--conditions", "in_domain",
                   "--episodes", "1", "--out", str(tmp_path / "eval")], cwd=tmp_path, timeout=300)
    assert res.returncode != 0
    assert "evil.ckpt" in res.stderr and "refused" in res.stderr
    assert not marker.exists()


def test_lightning_ckpt_path_refuses_it(tiny_world_model_run: Path, tmp_path: Path) -> None:
    work = tiny_world_model_run.parents[2]
    marker = tmp_path / "ran"
    ckpt = crafted_checkpoint(tmp_path / "evil.ckpt", marker)
    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_policy.yaml"), f"--ckpt_path={ckpt}",
                   "--trainer.logger.init_args.name=refused"], cwd=work, timeout=300)
    assert res.returncode != 0
    assert "evil.ckpt" in res.stderr and "refused" in res.stderr
    assert not marker.exists()


def test_saved_world_model_needs_safetensors(tiny_world_model_run: Path, tmp_path: Path) -> None:
    """A save_pretrained folder whose weights are a pickle, not safetensors, is not loaded."""
    from harmowam.world_models.loading import load_world_model

    saved = tmp_path / "world_model"
    shutil.copytree(tiny_world_model_run.parents[2] / "checkpoints" / "world_model", saved)
    load_world_model(saved)  # as exported: loads
    marker = tmp_path / "ran"
    weights = saved / "vae" / "diffusion_pytorch_model.safetensors"
    weights.unlink()
    torch.save({"payload": _Payload(marker)}, saved / "vae" / "diffusion_pytorch_model.bin")
    with pytest.raises(OSError, match="safetensors"):
        load_world_model(saved)
    assert not marker.exists()
