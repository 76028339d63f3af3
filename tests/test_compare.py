"""The paradigm comparison's tables from episode records, and (slow) the whole command on the smoke preset."""

from __future__ import annotations

import json

import pytest

from harmowam.compare import COMPARISONS, CONFIGS, config_of, reuse_pipeline_outputs, run_name, write_tables


def _records() -> list[dict]:
    """Two training seeds of HarmoWAM and Imagine-then-Execute, one of an ablation, and the references, on the same
    scenes: 2 tasks x 2 conditions x 5 scene seeds."""
    rates = {  # config -> condition -> successes among 10 scenes per seed
        "harmowam": {"in_domain": (9, 7), "background": (6, 6)},
        "imagine_then_execute": {"in_domain": (5, 5), "background": (6, 4)},
        "average": {"in_domain": (4,), "background": (2,)},
        "scripted": {"in_domain": (10,), "background": (10,)},
        "random": {"in_domain": (0,), "background": (0,)},
    }
    records = []
    for config, by_condition in rates.items():
        for condition, per_seed in by_condition.items():
            for s, k in enumerate(per_seed):
                policy = config if config in ("scripted", "random") else run_name(config, s)
                for i in range(10):
                    task, seed = ("push", "drawer-open")[i % 2], 100 + i // 2
                    success = i < k
                    records.append({"policy": policy, "task": task, "condition": condition, "seed": seed,
                                    "success": success, "transit": success or i % 3 == 0})
    return records


def test_names():
    assert config_of(run_name("imagine_then_execute", 3)) == "imagine_then_execute"
    assert config_of("scripted") == "scripted"
    assert set(COMPARISONS["cpu"]["configs"]) == set(CONFIGS) and len(COMPARISONS["cpu"]["seeds"]) >= 2


def test_tables_pool_seeds_and_pair_scenes(tmp_path):
    summary = write_tables(_records(), tmp_path, title="test")
    h = summary["harmowam"]["in_domain"]
    assert h["episodes"] == 20 and h["seeds"] == 2 and h["successes"] == 16
    assert h["mean"] == pytest.approx(0.8) and h["spread"] == pytest.approx(0.1)
    assert h["low"] < 0.8 < h["high"]
    assert summary["harmowam"]["ood_avg"]["mean"] == pytest.approx(0.6)  # one OOD condition here
    assert summary["imagine_then_execute"]["background"]["spread"] == pytest.approx(0.1)
    # transit: every success transited; interaction given transit = successes / transits
    t = summary["average"]["in_domain"]
    assert t["transit"] == pytest.approx(6 / 10) and t["interaction"] == pytest.approx(4 / 6)
    md = (tmp_path / "tables.md").read_text()
    assert "| harmowam | 0.80 ± 0.10 [" in md and "n=20" in md
    assert "## Table 1" in md and "## Ablations" in md
    # paired: harmowam succeeds on every scene where ITE does (first k scenes), so the difference is exact
    assert "| imagine_then_execute | +0.30 [" in md  # (16 - 10) / 20 in-domain
    assert "| scripted | -0.20 [" in md  # 16/20 against 20/20 on the same scenes
    for name in ("tables.md", "tables.csv", "tables.json", "success.png"):
        assert (tmp_path / name).is_file()
    assert list((tmp_path / "tensorboard").glob("events.*"))
    json.loads((tmp_path / "tables.json").read_text())


def test_cpu_preset_matches_the_quick_pipeline_it_can_reuse():
    from harmowam.pipeline import PIPELINES

    quick, cpu = PIPELINES["quick"], COMPARISONS["cpu"]
    keys = ("tasks", "episodes", "image_size", "world_model_overrides")
    assert [cpu[k] for k in keys] == [quick[k] for k in keys]


def test_reuse_takes_a_finished_pipeline_folder_and_keeps_what_is_there(tmp_path):
    src, dst = tmp_path / "pipeline", tmp_path / "compare"
    for rel in ("data/demos", "data/wm_video", "checkpoints/world_model", "cache/world_model_outputs/k"):
        (src / rel).mkdir(parents=True)
        (src / rel / "f.bin").write_bytes(rel.encode())
    (src / "checkpoints/world_model/world_model.json").write_text("{}")
    (src / "cache/world_model_outputs/k.tmp-123").mkdir()  # a cache build that was killed: not taken
    (dst / "data/demos").mkdir(parents=True)  # already there: kept as it is
    taken = reuse_pipeline_outputs(src, dst)
    assert taken == ["data/wm_video", "checkpoints/world_model", "cache/world_model_outputs"]
    assert (dst / "cache/world_model_outputs/k/f.bin").read_bytes() == b"cache/world_model_outputs/k"
    assert sorted(p.name for p in (dst / "cache/world_model_outputs").iterdir()) == ["k"]
    assert not (dst / "data/demos/f.bin").exists()
    assert reuse_pipeline_outputs(src, dst) == []
    with pytest.raises(FileNotFoundError, match="no exported world model"):
        reuse_pipeline_outputs(tmp_path / "nothing", dst)


@pytest.mark.slow
def test_compare_smoke_runs_every_step_and_a_rerun_does_no_work(tmp_path):
    from conftest import run_cli

    res = run_cli(["harmowam", "compare", "--preset", "smoke", "--workdir", str(tmp_path / "c"), "--workers", "1"],
                  cwd=tmp_path, timeout=3000)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "c" / "tables" / "tables.md").is_file()
    again = run_cli(["harmowam", "compare", "--preset", "smoke", "--workdir", str(tmp_path / "c"), "--workers", "1"],
                    cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "lightning fit" not in again.stdout and "exists, skipping" in again.stdout
