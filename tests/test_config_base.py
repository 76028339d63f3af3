"""Experiment configs state only what differs from experiments/base/stage2.yaml (harmowam.config_base)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harmowam.cli import lightning_main
from harmowam.config_base import ConfigBaseError, expand_config_bases

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
STAGE2 = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent.name not in ("sweeps", "backbones") and p.name != "world_model.yaml"
                and p.parent.name != "base")


def resolved(config: Path, *extra: str, capsys: pytest.CaptureFixture) -> dict:
    with pytest.raises(SystemExit) as exit_:
        lightning_main(["fit", "-c", str(config), *extra, "--print_config"])
    assert exit_.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("config", STAGE2, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_every_stage2_config_is_the_base_recipe_plus_its_differences(config, capsys):
    base = yaml.safe_load((EXPERIMENTS / "base" / "stage2.yaml").read_text())
    cfg = resolved(config, capsys=capsys)
    assert cfg["base"] is None  # the merged config is complete: saved or printed, it names no base
    assert cfg["trainer"]["max_steps"] == base["trainer"]["max_steps"]
    assert len(cfg["trainer"]["callbacks"]) == len(base["trainer"]["callbacks"])
    assert cfg["model"]["init_args"]["lr"] == base["model"]["init_args"]["lr"]
    assert cfg["trainer"]["logger"]["init_args"]["save_dir"] == "runs"
    name = cfg["trainer"]["logger"]["init_args"]["name"]
    assert name != "stage2" and name.endswith(config.stem)  # each run has its own folder
    own = yaml.safe_load(config.read_text())
    assert len(config.read_text().splitlines()) <= 20 and own["base"].endswith("base/stage2.yaml")


def test_a_config_overrides_its_base_and_the_command_line_overrides_both(capsys):
    cfg = resolved(EXPERIMENTS / "imagine_then_execute.yaml", "--trainer.max_steps=7", capsys=capsys)
    assert cfg["model"]["init_args"]["gate"] == "always_reactive"
    assert list(cfg["model"]["init_args"]["experts"]) == ["reactive"]  # a mapping given replaces the base's
    assert cfg["data"]["init_args"]["label_strategy"] is None
    assert cfg["data"]["init_args"]["batch_size"] == 24  # from the base
    assert cfg["trainer"]["max_steps"] == 7


def test_bases_chain_relative_to_the_file_that_names_them(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "root.yaml").write_text("trainer: {max_steps: 1}\n")
    (tmp_path / "a" / "mid.yaml").write_text("base: ../root.yaml\n")
    (tmp_path / "a" / "leaf.yaml").write_text("base: mid.yaml\n")
    argv = expand_config_bases(["fit", "-c", str(tmp_path / "a" / "leaf.yaml"), "--x=1"])
    assert argv == ["fit", "-c", str(tmp_path / "root.yaml"), "-c", str(tmp_path / "a" / "mid.yaml"),
                    "-c", str(tmp_path / "a" / "leaf.yaml"), "--base=null", "--x=1"]
    assert expand_config_bases(["fit", "--config=" + str(tmp_path / "root.yaml")]) == [
        "fit", "--config", str(tmp_path / "root.yaml")]


def test_a_missing_base_or_a_loop_is_named(tmp_path):
    (tmp_path / "leaf.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigBaseError, match=r"leaf\.yaml: base config 'nowhere\.yaml' not found"):
        expand_config_bases(["fit", "-c", str(tmp_path / "leaf.yaml")])
    (tmp_path / "x.yaml").write_text("base: y.yaml\n")
    (tmp_path / "y.yaml").write_text("base: x.yaml\n")
    with pytest.raises(ConfigBaseError, match="config bases form a loop"):
        expand_config_bases(["fit", "-c", str(tmp_path / "x.yaml")])
