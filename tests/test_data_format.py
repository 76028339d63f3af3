import json

import numpy as np
import pytest

from conftest import write_synthetic
from harmowam.data import DatasetError, EpisodeDataModule, EpisodeStore
from harmowam.data.format import EpisodeWriter


def test_round_trip_and_statistics(tmp_path):
    path = write_synthetic(tmp_path / "ds", [20, 25, 30])
    store = EpisodeStore(path)
    assert len(store) == 3 and store.num_frames == 75 and store.image_size == (16, 16)
    assert [e.length for e in store.episodes] == [20, 25, 30]
    ep = store.episode(1)
    assert ep["image"].dtype == np.uint8 and ep["image"].shape == (25, 16, 16, 3)
    actions = np.concatenate([store.episode(i)["action"] for i in range(3)])
    np.testing.assert_allclose(store.stats["action"]["mean"], actions.mean(0), atol=1e-5)
    np.testing.assert_allclose(store.stats["action"]["max"], actions.max(0), atol=1e-6)
    assert store.meta["generation"] == {"synthetic": True}


def test_writer_refuses_to_overwrite_an_existing_dataset(tmp_path):
    path = write_synthetic(tmp_path / "ds", [20])
    before = (path / "meta.json").read_text()
    with pytest.raises(FileExistsError, match="overwrite"):
        EpisodeWriter(path, 16)
    assert (path / "meta.json").read_text() == before
    EpisodeStore(path)  # still intact


def test_writer_takes_the_image_shape_from_image_size_only(tmp_path):
    with pytest.raises(DatasetError, match="image_size, not from shapes"):
        EpisodeWriter(tmp_path / "ds", 16, shapes={"image": (8, 8, 3), "state": (4,), "action": (4,)})


def test_pipeline_names_the_folder_it_cannot_continue(tmp_path):
    from harmowam.pipeline import PIPELINES, prepare_data_and_world_model

    EpisodeWriter(tmp_path / "data" / "demos", 16, generation={"another": "run"}, resume=True)  # left unfinished
    with pytest.raises(FileExistsError, match=r"cannot be continued by this run: delete that folder and rerun"):
        prepare_data_and_world_model(tmp_path, PIPELINES["smoke"], workers=1, label="test")


def test_pipeline_presets_give_episodes_per_regime():
    from harmowam.pipeline import PIPELINES, regime_episodes
    from harmowam.sim.generate import PRESETS

    assert [regime_episodes(PIPELINES["quick"], r) for r in ("demos", "wm_video")] == [50, 20]
    assert [regime_episodes(PIPELINES["smoke"], r) for r in ("demos", "wm_video")] == [3, 3]
    assert regime_episodes(PIPELINES["default"], "demos") == PRESETS["demos"]["episodes"]
    assert regime_episodes({"episodes": {"demos": 7}}, "wm_video") == PRESETS["wm_video"]["episodes"]


def _edit_meta(path, fn):
    meta = json.loads((path / "meta.json").read_text())
    fn(meta)
    (path / "meta.json").write_text(json.dumps(meta))


def test_missing_key_names_the_file_and_key(tmp_path):
    path = write_synthetic(tmp_path / "ds", [20])
    _edit_meta(path, lambda m: m["keys"].pop("action"))
    with pytest.raises(DatasetError, match=r"meta\.json: missing key 'keys\.action'"):
        EpisodeStore(path)


@pytest.mark.parametrize("edit, key", [
    (lambda m: m["episodes"][0].update(length="20"), r"'episodes\[0\]\.length' must be an integer, got '20' \(str\)"),
    (lambda m: m.update(num_frames=20.0), r"'num_frames' must be an integer"),
    (lambda m: m["keys"]["image"].update(shape=16), r"'keys\.image\.shape' must be a list, got 16 \(int\)"),
    (lambda m: m["keys"]["state"].update(shape=[4, 1]), r"'keys\.state\.shape' must be a list of 1 sizes"),
    (lambda m: m["keys"]["state"].update(shape=[5]), r"'stats\.state\.mean' must be a list of 5 numbers"),
    (lambda m: m["keys"].update(depth={"shape": [1]}), r"unknown key 'keys\.depth'; keys are image, state"),
    (lambda m: m["keys"]["state"].update(file="../elsewhere.bin"), r"'keys\.state\.file' must be a file name inside"),
    (lambda m: m["stats"]["action"]["std"].__setitem__(2, "x"), r"'stats\.action\.std\[2\]' must be a finite number"),
    (lambda m: m["stats"]["state"].pop("min"), r"missing key 'stats\.state\.min'"),
    (lambda m: m["episodes"][0].pop("task"), r"missing key 'episodes\[0\]\.task'"),
    (lambda m: m.update(generation=[]), r"'generation' must be an object"),
])
def test_meta_fields_are_type_checked_with_file_and_key(tmp_path, edit, key):
    """Wrong types are refused when the dataset is opened (not coerced, not left to break training)."""
    path = write_synthetic(tmp_path / "ds", [20])
    _edit_meta(path, edit)
    with pytest.raises(DatasetError, match=r"meta\.json: " + key):
        EpisodeStore(path)


def test_missing_file(tmp_path):
    path = write_synthetic(tmp_path / "ds", [20])
    (path / "state.bin").unlink()
    with pytest.raises(DatasetError, match=r"state\.bin: missing file for key 'state'"):
        EpisodeStore(path)


def test_shape_mismatch_names_the_file(tmp_path):
    path = write_synthetic(tmp_path / "ds", [20, 20])
    data = (path / "action.bin").read_bytes()
    (path / "action.bin").write_bytes(data[:-16])  # one frame short
    with pytest.raises(DatasetError, match=r"action\.bin: .*shape mismatch"):
        EpisodeStore(path)


def test_nan_names_file_and_episode(tmp_path):
    path = write_synthetic(tmp_path / "ds", [20, 20, 20])
    arr = np.memmap(path / "state.bin", dtype=np.float32, mode="r+", shape=(60, 4))
    arr[45, 2] = np.inf
    arr.flush()
    del arr
    with pytest.raises(DatasetError, match=r"state\.bin: NaN or inf in 'state' at frame 45 \(episode 2.*step 5\)"):
        EpisodeStore(path)


def test_empty_dataset(tmp_path):
    path = EpisodeWriter(tmp_path / "empty", 16).close()
    with pytest.raises(DatasetError, match=r"meta\.json: the dataset is empty"):
        EpisodeStore(path)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="harmowam data generate"):
        EpisodeStore(tmp_path)


def test_episode_shorter_than_window_names_file_and_episode(tmp_path):
    path = write_synthetic(tmp_path / "ds", [30, 10, 30])
    dm = EpisodeDataModule(str(path), num_future_frames=4, future_stride=4, action_horizon=12, val_fraction=0.0)
    with pytest.raises(DatasetError, match=r"meta\.json: episode 1 .*10 steps, shorter than the window \(17 steps"):
        dm.setup("fit")


def test_subset_keeps_the_first_episodes_of_each_task_and_their_metadata(tmp_path):
    from harmowam.data.format import EpisodeWriter
    from harmowam.data.subset import write_subset

    rng = np.random.default_rng(0)
    writer = EpisodeWriter(tmp_path / "src", 8, {"variation": {"position_scale": 0.5}})
    for i, task in enumerate(["push", "push", "drawer-open", "push", "drawer-open"]):
        n = 5 + i
        writer.add_episode({"image": rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8),
                            "state": rng.normal(size=(n, 4)).astype(np.float32),
                            "env_state": rng.normal(size=(n, 39)).astype(np.float32),
                            "action": rng.uniform(-1, 1, (n, 4)).astype(np.float32)}, task, task, seed=100 + i)
    src = EpisodeStore(writer.close())
    sub = EpisodeStore(write_subset(src.path, tmp_path / "sub", 2))
    assert [(e.task, e.seed) for e in sub.episodes] == [("push", 100), ("push", 101), ("drawer-open", 102),
                                                        ("drawer-open", 104)]
    np.testing.assert_array_equal(sub.episode(3)["action"], src.episode(4)["action"])
    assert sub.meta["generation"]["variation"] == {"position_scale": 0.5}


def test_pipeline_refuses_a_finished_data_folder_made_with_other_settings(tmp_path):
    from harmowam.pipeline import PIPELINES, prepare_data_and_world_model

    demos = tmp_path / "data" / "demos"
    writer = EpisodeWriter(demos, 16, generation={"preset": "demos", "tasks": ["push", "drawer-open"],
                                                  "episodes_per_task": 20})
    writer.add_episode({"image": np.zeros((3, 16, 16, 3), np.uint8), "state": np.zeros((3, 4), np.float32),
                        "env_state": np.zeros((3, 39), np.float32), "action": np.zeros((3, 4), np.float32)},
                       task="push", instruction="push the puck to the goal", seed=0)
    writer.close()
    with pytest.raises(DatasetError, match=r"holds 20 episodes per task of push, drawer-open at 16 px, but this run "
                                           r"asks for 3 of push, drawer-open at 64 px.*another --workdir"):
        prepare_data_and_world_model(tmp_path, PIPELINES["smoke"], workers=1, label="test")
    # the right tasks and episodes at another frame side are refused as well
    same_but_size = {**PIPELINES["smoke"], "episodes": 20, "image_size": 48}
    with pytest.raises(DatasetError, match=r"at 16 px, but this run asks for 20 of push, drawer-open at 48 px"):
        prepare_data_and_world_model(tmp_path, same_but_size, workers=1, label="test")
    assert (demos / "meta.json").is_file()  # nothing was deleted


def test_another_frame_side_replaces_the_presets_and_gets_its_own_default_folder():
    from harmowam.compare import COMPARISONS
    from harmowam.pipeline import DEFAULT_IMAGE_SIZE, PIPELINES, default_workdir, sized

    spec, suffix = sized(PIPELINES["quick"], 64)
    assert spec["image_size"] == 64 and spec["tasks"] == PIPELINES["quick"]["tasks"] and suffix == "_64px"
    assert PIPELINES["quick"]["image_size"] == 48  # the preset itself is untouched
    assert default_workdir("quick", suffix).as_posix() == "runs/pipeline/quick_64px"
    assert sized(PIPELINES["quick"], 48) == (PIPELINES["quick"], "")  # its own size: the usual folder
    assert sized(PIPELINES["smoke"], None) == (PIPELINES["smoke"], "")
    assert sized(PIPELINES["smoke"], DEFAULT_IMAGE_SIZE)[1] == ""  # a preset without a size renders at the default
    assert sized(COMPARISONS["cpu"], 64)[0]["image_size"] == 64
