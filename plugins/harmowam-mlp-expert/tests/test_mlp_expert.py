"""The example plugin, tested as a third party would: installed, found by name, trained by a config."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import harmowam
from harmowam.registry import registrations

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny_mlp_policy.yaml"


def test_registered_through_its_entry_point():
    assert "mlp" in harmowam.list_experts()
    reg = next(r for r in registrations() if r.kind == "expert" and r.name == "mlp")
    assert reg.distribution == "harmowam-mlp-expert"


def test_a_config_trains_it_in_place_of_the_predictive_expert(tmp_path):
    os.environ.setdefault("MUJOCO_GL", "egl")
    from harmowam.sim.generate import GenerationConfig, generate

    generate(tmp_path / "data" / "tiny", GenerationConfig(tasks=["push"], episodes=3, image_size=32, workers=1),
             progress=False)
    exe = Path(sys.executable).parent / "lightning"
    res = subprocess.run([str(exe), "fit", "-c", str(CONFIG)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rows = list(csv.DictReader(open(next((tmp_path / "runs").rglob("metrics.csv")))))
    losses = [float(r["train/predictive_loss"]) for r in rows if r.get("train/predictive_loss")]
    assert len(losses) >= 20
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5  # it learned
    val = [float(r["val/predictive_action_mse"]) for r in rows if r.get("val/predictive_action_mse")]
    assert val and val[-1] < 1.0
    from harmowam.policy_module import PolicyModule
    from harmowam_mlp_expert import MLPExpert

    policy = PolicyModule.load_from_checkpoint(next((tmp_path / "runs").rglob("*.ckpt")))
    assert isinstance(policy.experts["predictive"], MLPExpert)
