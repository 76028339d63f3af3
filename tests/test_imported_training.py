"""Both stages train on an imported robot dataset (96 px, 6-D state, 7-D action) with the configs unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("av")

from conftest import CONFIGS, run_cli  # noqa: E402

from harmowam.data.lerobot import import_lerobot  # noqa: E402
from harmowam.safe_load import load_checkpoint  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot_v3_tiny"
# two episodes: one for training, one for validation
SPLIT = ["--data.init_args.val_fraction=0.5"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("imported_run")
    import_lerobot(FIXTURE, work / "data" / "tiny")
    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_world_model.yaml"), *SPLIT], cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    return work


def test_world_model_takes_image_size_and_instructions_from_the_data(work):
    from harmowam.world_models.loading import load_world_model

    wm = load_world_model(work / "checkpoints" / "world_model")
    assert wm.image_size == 96
    assert sorted(wm.text.vocabulary) == ["open the top drawer", "pick up the red block"]


def test_policy_trains_with_the_data_widths_and_acts(work):
    from harmowam.policy_module import PolicyModule

    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_policy.yaml"), *SPLIT], cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    ckpt = next((work / "runs" / "tiny_policy").rglob("*.ckpt"))
    hp = load_checkpoint(ckpt)["hyper_parameters"]
    assert (hp["state_dim"], hp["action_dim"]) == (6, 7)
    policy = PolicyModule.load_from_checkpoint(ckpt, weights_only=True).eval()
    chunk = policy.predict_action_chunk({"image": torch.zeros(1, 3, 96, 96, dtype=torch.uint8),
                                         "state": torch.zeros(1, 6), "instruction": ["open the top drawer"]})
    assert chunk.shape == (1, 4, 7) and torch.isfinite(chunk).all()


def test_widths_that_contradict_the_data_are_refused_by_name(work):
    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_policy.yaml"), *SPLIT, "--model.init_args.action_dim=4",
                   "--trainer.max_steps=1"], cwd=work)
    assert res.returncode != 0
    assert "data/tiny holds 96 px frames, 6-D state and 7-D actions, but the model takes 96 px" in res.stderr


def test_a_policy_without_world_model_takes_the_image_size_from_the_data(work):
    """Behaviour cloning has no world model to take its frame side from: it is the data's (96 px), not 64."""
    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_policy.yaml"), *SPLIT, "--model.init_args.world_model=null",
                   "--model.init_args.experts={predictive: {name: behavior_cloning}}",
                   "--model.init_args.gate=always_predictive", "--data.init_args.label_strategy=null",
                   "--trainer.logger.init_args.name=tiny_bc"], cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    hp = load_checkpoint(next((work / "runs" / "tiny_bc").rglob("*.ckpt")))["hyper_parameters"]
    assert hp["image_size"] == 96
