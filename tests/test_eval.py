"""The closed-loop evaluation suite: conditions, seeds, the harness, resume, tables, errors."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli

from harmowam.eval import EvalConfig, PolicySpec, evaluate, get_suite
from harmowam.eval.metrics import SuccessRate, cell_metrics, summary_rows
from harmowam.eval.records import EpisodeLog
from harmowam.eval.suite import EVAL_SEED_BASE, MAX_EPISODES
from harmowam.sim.env import DEFAULT_CAMERA, render, reset_scene
from harmowam.sim.generate import PRESETS, SEED_STRIDE
from harmowam.sim.tasks import list_tasks

pytestmark = pytest.mark.sim
SUITE = get_suite("metaworld6")


def _scene(task: str, condition: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    env, obs = reset_scene(task, SUITE.conditions[condition].variation, seed, image_size=64)
    return render(env).astype(np.float32), obs


@pytest.mark.parametrize("task", ["push", "drawer-open"])
def test_each_condition_changes_the_scene_and_is_reproducible(task):
    seed = SUITE.episode_seed(task, 3)
    base, base_obs = _scene(task, "in_domain", seed)
    for condition in SUITE.ood_conditions:
        image, obs = _scene(task, condition, seed)
        changed = (np.abs(image - base).max(axis=-1) > 20).sum()  # pixels that changed visibly
        assert changed >= 5, f"{condition} did not change the rendered scene ({changed} pixels)"
        again, obs_again = _scene(task, condition, seed)
        np.testing.assert_array_equal(image, again)
        np.testing.assert_array_equal(obs, obs_again)
    # a variation applied before does not leak into the next in-domain reset
    restored, restored_obs = _scene(task, "in_domain", seed)
    np.testing.assert_array_equal(base, restored)
    np.testing.assert_array_equal(base_obs, restored_obs)


def test_episodes_in_flight_get_their_own_environments_and_idle_ones_are_closed():
    from harmowam.sim import env as sim_env

    a, _ = reset_scene("push", {}, 0, instance=0)
    b, _ = reset_scene("push", {}, 0, instance=1)
    c, _ = reset_scene("drawer-open", {}, 0, instance=0)
    assert a is not b and reset_scene("push", {}, 1, instance=0)[0] is a
    sim_env.evict_cached_envs(keep=2, in_use=[b])  # b is in an episode: kept although the least recently used
    assert list(sim_env._CACHE.values()) == [b, a]  # c, built before a was used again, was closed
    sim_env.evict_cached_envs(keep=1, in_use=[b])
    assert list(sim_env._CACHE.values()) == [b]


def test_position_condition_is_outside_the_demonstrations_and_inside_the_video_range():
    env, _ = reset_scene("push", {}, 0)
    full = env._harmowam_defaults["reset_space"]
    lo, hi = full.low[0], full.high[0]  # the puck's x
    demo_half = (hi - lo) / 2 * PRESETS["demos"]["variation"]["position_scale"]
    centre = (lo + hi) / 2
    xs = [reset_scene("push", SUITE.conditions["position"].variation, SUITE.episode_seed("push", k))[1][4]
          for k in range(8)]
    for x in xs:
        assert lo - 1e-6 <= x <= hi + 1e-6
        assert abs(x - centre) >= demo_half - 1e-6
    assert min(xs) < centre < max(xs), "both sides of the range are used"


def test_object_shapes_of_evaluation_are_in_no_training_regime():
    from harmowam.sim.generate import run_episode
    from harmowam.sim.variations import OBJECT_SHAPE_PALETTES, SceneVariation

    assert not set(OBJECT_SHAPE_PALETTES["train"]) & set(OBJECT_SHAPE_PALETTES["test"])
    video = SceneVariation(**PRESETS["wm_video"]["variation"])
    shapes = [video.shape_for("push", seed) for seed in range(20)]
    assert set(shapes) == set(OBJECT_SHAPE_PALETTES["train"])  # the video shows pucks and spheres
    assert {video.shape_for("drawer-open", seed) for seed in range(5)} == {None}  # no swappable object there
    evaluated = SceneVariation(**SUITE.conditions["object"].variation)
    assert {evaluated.shape_for("push", SUITE.episode_seed("push", k)) for k in range(5)} == {"cube"}
    seed = shapes.index("sphere")
    episode = run_episode("push", seed, 32, "corner4", 150, PRESETS["wm_video"]["variation"])
    assert episode["success"], "the scripted expert pushes the sphere too"


def test_evaluation_seeds_are_disjoint_from_training_seeds():
    # generation draws seed + SEED_STRIDE * task + k for k < 3 * episodes + 10 (its retry limit)
    generous = 3 * 10_000 + 10
    for preset in PRESETS.values():
        highest = preset["seed"] + SEED_STRIDE * (len(list_tasks()) - 1) + generous
        assert highest < EVAL_SEED_BASE
    seeds = {SUITE.episode_seed(t, k) for t in SUITE.tasks for k in (0, MAX_EPISODES - 1)}
    assert len(seeds) == 2 * len(SUITE.tasks)
    with pytest.raises(ValueError, match="episode index"):
        SUITE.episode_seed("push", MAX_EPISODES)


def test_scripted_expert_succeeds_through_the_harness_and_random_does_not(tmp_path):
    cfg = EvalConfig(tasks="push,drawer-open", conditions="in_domain,object", episodes=2, workers=1, videos=1,
                     image_size=32, out=tmp_path, tensorboard=True)
    summary = evaluate([PolicySpec("scripted"), PolicySpec("random")], cfg, progress=False)
    rows = {r["policy"]: r for r in summary["summary"]}
    assert rows["scripted"]["in_domain"] == 1.0 and rows["scripted"]["object"] == 1.0
    assert rows["random"]["in_domain"] == 0.0
    for task in ("push", "drawer-open"):
        cell = summary["cells"][f"scripted/{task}/object"]
        assert cell["transit"] == 1.0 and cell["interaction"] == 1.0 and cell["episodes"] == 2
    records = list(EpisodeLog(tmp_path / "episodes.jsonl"))
    assert len(records) == 2 * 2 * 2 * 2
    assert all(r["steps"] == 200 for r in records if r["policy"] == "random")
    for name in ("results.md", "results.csv", "summary.csv", "summary.json", "eval.json"):
        assert (tmp_path / name).is_file()
    assert (tmp_path / "videos" / "scripted" / "push_object_000.gif").stat().st_size > 0
    assert not (tmp_path / "videos" / "scripted" / "push_object_001.gif").exists()
    assert len(list((tmp_path / "timelines").rglob("*.png"))) == len(records)
    assert list((tmp_path / "tensorboard").glob("events.*"))
    assert "| scripted | 1.00 | 1.00 | 1.00 | 0.0% |" in (tmp_path / "results.md").read_text()


def test_resume_skips_finished_episodes_and_drops_a_cut_line(tmp_path):
    cfg = EvalConfig(tasks="push", conditions="in_domain", episodes=1, workers=1, videos=0, timelines=False,
                     tensorboard=False, image_size=32, out=tmp_path)
    evaluate([PolicySpec("scripted")], cfg, progress=False)
    log = tmp_path / "episodes.jsonl"
    first = log.read_text()
    with open(log, "a") as f:
        f.write('{"policy": "scripted", "task": "push", "condi')  # a write cut short by a kill
    cfg.episodes = 3
    evaluate([PolicySpec("scripted")], cfg, progress=False)
    lines = log.read_text().splitlines()
    assert log.read_text().startswith(first)  # the finished episode is kept, not rerun
    assert [json.loads(line)["episode"] for line in lines] in ([0, 1, 2], [0, 2, 1])
    evaluate([PolicySpec("scripted")], cfg, progress=False)  # nothing left to run
    assert len(log.read_text().splitlines()) == 3
    cfg.max_steps = 50
    with pytest.raises(ValueError, match="max_steps"):
        evaluate([PolicySpec("scripted")], cfg, progress=False)
    assert len(log.read_text().splitlines()) == 3


def test_killed_evaluation_completes_on_rerun_without_repeating_episodes(tmp_path):
    out = tmp_path / "ev"
    cmd = [str(Path(sys.executable).parent / "harmowam"), "eval", "--policy", "random", "--tasks", "push",
           "--conditions", "in_domain,background", "--episodes", "3", "--workers", "1", "--videos", "0",
           "--no-timelines", "--image-size", "32", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    log = out / "episodes.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not log.is_file() or len(log.read_text().splitlines()) < 2):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = log.read_text().splitlines()
    assert 2 <= len(before) < 6
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{len(before)} already in" in res.stdout
    after = log.read_text().splitlines()
    assert after[: len(before)] == before
    keys = [(r["condition"], r["episode"]) for r in map(json.loads, after)]
    assert len(keys) == len(set(keys)) == 6


def test_table_arithmetic():
    def rec(policy, task, condition, success, transit):
        return {"policy": policy, "task": task, "condition": condition, "success": success, "transit": transit}

    records = [
        # task a: ID 2/2; background 1/2 (both reached); position 0/2, one reached
        rec("p", "a", "in_domain", True, True), rec("p", "a", "in_domain", True, True),
        rec("p", "a", "background", True, True), rec("p", "a", "background", False, True),
        rec("p", "a", "position", False, True), rec("p", "a", "position", False, False),
        # task b: ID 1/2, background 1/2, position 0/2 and never reached
        rec("p", "b", "in_domain", True, True), rec("p", "b", "in_domain", False, False),
        rec("p", "b", "background", True, True), rec("p", "b", "background", False, False),
        rec("p", "b", "position", False, False), rec("p", "b", "position", False, False),
    ]
    cells = cell_metrics(records)
    assert cells[("p", "a", "background")] == {"episodes": 2, "success": 0.5, "transit": 1.0, "interaction": 0.5,
                                               "successes": 1, "transits": 2}
    assert cells[("p", "b", "in_domain")]["interaction"] == 1.0  # 1 success among 1 transit
    assert math.isnan(cells[("p", "b", "position")]["interaction"])  # no transit: undefined, not 0
    (row,) = summary_rows(cells, ["p"], ["a", "b"], ["in_domain", "background", "position"])
    assert row["in_domain"] == pytest.approx(0.75)
    assert row["background"] == pytest.approx(0.5)
    assert row["position"] == pytest.approx(0.0)
    assert row["ood_avg"] == pytest.approx(0.25)
    assert row["relative_drop"] == pytest.approx((0.75 - 0.25) / 0.75)
    assert (row["in_domain_successes"], row["in_domain_episodes"]) == (3, 4)
    assert (row["ood_avg_successes"], row["ood_avg_episodes"]) == (2, 8)
    metric = SuccessRate()
    metric.update(torch.tensor([True, False, True]), mask=torch.tensor([True, True, False]))
    assert metric.compute().item() == pytest.approx(0.5)


def test_bad_requests_fail_before_any_rollout(tmp_path, tiny_world_model_run, tiny_policy_ckpt):
    cases = [
        (dict(suite="nope"), [], "unknown suite 'nope'. Suites: metaworld6"),
        (dict(conditions="in_domain,weather"), [], "unknown condition of suite 'metaworld6': weather"),
        (dict(tasks="push,fly"), [], "unknown task of suite 'metaworld6': fly"),
        (dict(), [PolicySpec("checkpoint", path=str(tmp_path / "missing.ckpt"))], "missing.ckpt' does not exist"),
    ]
    wm_ckpt = next((tiny_world_model_run / "checkpoints").glob("*.ckpt"))
    cases.append((dict(), [PolicySpec("checkpoint", path=str(wm_ckpt))], "not a stage-2 policy checkpoint"))
    ckpt = torch.load(tiny_policy_ckpt, map_location="cpu", weights_only=False)
    ckpt["hyper_parameters"]["action_dim"] = 7  # trained for another robot
    other = tmp_path / "seven_dof.ckpt"
    torch.save(ckpt, other)
    cases.append((dict(), [PolicySpec("checkpoint", path=str(other))], "action_dim=7, suite 'metaworld6' needs 4"))
    for i, (kwargs, policies, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        cfg = EvalConfig(out=out, workers=1, **kwargs)
        with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(").replace(".", r"\.")):
            evaluate(policies or [PolicySpec("scripted")], cfg, progress=False)
        assert not (out / "episodes.jsonl").exists()
    res = run_cli(["harmowam", "eval", "--policy", "scripted", "--conditions", "weather", "--out",
                   str(tmp_path / "cli")], cwd=tmp_path)
    assert res.returncode == 2 and "unknown condition of suite 'metaworld6': weather" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli(["harmowam", "eval", "--ckpt", "a.ckpt", "--ckpt", "b.ckpt", "--name", "a"], cwd=tmp_path)
    assert res.returncode == 2 and "one --name per --ckpt (2 checkpoints, 1 names)" in res.stderr


def test_checkpoint_policy_acts_in_closed_loop_and_records_its_experts(tmp_path, tiny_policy_ckpt):
    cfg = EvalConfig(tasks="push", conditions="in_domain", episodes=1, max_steps=10, workers=1, videos=1,
                     out=tmp_path, camera="workspace")  # the checkpoint's camera wins: it sees what it trained on
    summary = evaluate([PolicySpec("checkpoint", path=str(tiny_policy_ckpt), name="tiny", n_action_steps=2)], cfg,
                       progress=False)
    (record,) = list(EpisodeLog(tmp_path / "episodes.jsonl"))
    assert record["policy"] == "tiny" and record["steps"] == 10
    assert set(record["expert_steps"]) <= {"predictive", "reactive", "average"}
    assert sum(record["expert_steps"].values()) == 10
    assert record["policy_time_s"] > 0 and Path(record["timeline"]).is_file() and Path(record["video"]).is_file()
    assert summary["speed"]["tiny"]["steps_per_s_with_policy"] < summary["speed"]["tiny"]["env_steps_per_s"]
    manifest = json.loads((tmp_path / "eval.json").read_text())
    assert manifest["image_size"] == 32 and manifest["policies"]["tiny"]["n_action_steps"] == 2
    assert manifest["camera"] == "corner4" == DEFAULT_CAMERA
    with pytest.raises(ValueError, match="n_action_steps must be in"):
        evaluate([PolicySpec("checkpoint", path=str(tiny_policy_ckpt), name="tiny2", n_action_steps=99)], cfg,
                 progress=False)


def test_batched_inference_gives_each_episode_what_it_gets_alone(tmp_path, tiny_policy_ckpt):
    """Four episodes in flight, one policy call per step for all of them, environments in two processes: every
    episode's record matches the one-episode-at-a-time evaluation (same actions, so the same states)."""
    spec = [PolicySpec("checkpoint", path=str(tiny_policy_ckpt), name="tiny", n_action_steps=2)]
    records = {}
    for mode, workers in (("workers", 1), ("batched", 2)):
        cfg = EvalConfig(tasks="push,drawer-open", conditions="in_domain", episodes=2, max_steps=12, workers=workers,
                         inference=mode, envs=4, videos=0, timelines=False, tensorboard=False, out=tmp_path / mode)
        summary = evaluate(spec, cfg, progress=False)
        assert summary["run"]["episodes"] == 4 and summary["run"]["env_steps"] == 48
        records[mode] = {(r["task"], r["episode"]): r for r in EpisodeLog(tmp_path / mode / "episodes.jsonl")}
    assert records["workers"].keys() == records["batched"].keys()
    for key, r in records["workers"].items():
        b = records["batched"][key]
        assert (b["expert_steps"], b["min_distance"], b["object_displacement"]) == \
            (r["expert_steps"], r["min_distance"], r["object_displacement"]), key
    with pytest.raises(ValueError, match="unknown inference mode 'gpu'"):
        evaluate(spec, EvalConfig(tasks="push", inference="gpu", out=tmp_path / "bad", workers=1), progress=False)
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_wilson_interval_and_paired_difference():
    from harmowam.eval.statistics import format_rate, paired_difference, wilson_interval

    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)  # not empty at 0 successes
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    assert format_rate(22, 30) == "0.73 [0.56, 0.86] n=30"
    a = {("push", "in_domain", s): s < 6 for s in range(10)}  # 6/10
    b = {("push", "in_domain", s): s < 3 for s in range(10)}  # 3/10, the same scenes' first three
    d = paired_difference(a, b)
    assert d["difference"] == pytest.approx(0.3) and d["pairs"] == 10 and d["low"] < 0.3 < d["high"]
    assert paired_difference(a, {})["pairs"] == 0


def test_transit_is_proximity_or_a_moved_object():
    from harmowam.eval.rollout import transit_step

    states = np.zeros((5, 39), np.float32)
    states[:, 0] = [0.5, 0.4, 0.3, 0.2, 0.2]  # the hand approaches but stays 0.2 m away
    assert transit_step(states, 0.05) is None
    states[3:, 4] = 0.03  # ...while the object moves 3 cm (pressed or pulled from afar)
    assert transit_step(states, 0.05) == 3
    states[:, 4] = 0.0
    states[2, 0] = 0.04  # within the task's distance at step 2
    assert transit_step(states, 0.05) == 2


def test_every_scripted_success_has_transited_in_every_task(tmp_path):
    """The transit definition agrees with success on the scripted expert, in each task and condition."""
    from harmowam.sim.tasks import list_tasks

    cfg = EvalConfig(tasks="all", conditions="in_domain,position", episodes=1, workers=1, videos=0,
                     image_size=32, out=tmp_path, timelines=False)
    evaluate([PolicySpec("scripted")], cfg, progress=False)
    records = list(EpisodeLog(tmp_path / "episodes.jsonl"))
    assert {r["task"] for r in records} == set(list_tasks())
    assert all(r["success"] for r in records)
    assert all(r["transit"] and r["transit_step"] is not None for r in records)
