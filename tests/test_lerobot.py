"""LeRobotDataset v3 in and out: the fixture written by the real `lerobot` package, round trips, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("av")

from harmowam.cli import harmowam_main  # noqa: E402
from harmowam.data.format import DatasetError, EpisodeStore  # noqa: E402
from harmowam.data.lerobot import import_lerobot  # noqa: E402
from harmowam.data.lerobot.writer import export_lerobot  # noqa: E402
from harmowam.data.normalization import Normalizer  # noqa: E402
from harmowam.data.windows import WindowDataset, WindowSpec  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "lerobot_v3_tiny"  # tests/fixtures/make_lerobot_fixture.py wrote it


def fixture_frame(episode: int, t: int, size: int = 96) -> np.ndarray:
    """What make_lerobot_fixture.py encoded as frame t of an episode."""
    y, x = np.mgrid[0:size, 0:size]
    img = np.stack([x * 2, y * 2, np.full_like(x, 40 + 20 * episode + 8 * t)], -1).astype(np.uint8)
    img[10 + 3 * t:26 + 3 * t, 30:46] = 255
    return img


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> EpisodeStore:
    out = tmp_path_factory.mktemp("lerobot") / "imported"
    summary = import_lerobot(FIXTURE, out)
    assert summary["frames"] == 42 and summary["frames_per_second"] > 0
    return EpisodeStore(out)


def test_fixture_from_lerobot_imports_with_its_shapes_tasks_and_stats(imported):
    info = json.loads((FIXTURE / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert imported.image_size == (96, 96) and imported.dim("state") == 6 and imported.dim("action") == 7
    assert "env_state" not in imported.arrays
    assert [(e.instruction, e.length) for e in imported.episodes] == [("pick up the red block", 24),
                                                                    ("open the top drawer", 18)]
    ep = imported.episode(1)
    t = np.arange(18, dtype=np.float32)[:, None]
    np.testing.assert_allclose(ep["state"], np.linspace(0, 1, 6, dtype=np.float32) * t + 1, rtol=1e-6)
    np.testing.assert_allclose(ep["action"][:, 6], np.where(t[:, 0] > 9, 1.0, -1.0))
    stats = json.loads((FIXTURE / "meta" / "stats.json").read_text())
    np.testing.assert_allclose(imported.stats["action"]["mean"], stats["action"]["mean"], rtol=1e-6)
    np.testing.assert_allclose(imported.stats["state"]["std"], stats["observation.state"]["std"], rtol=1e-6)


def test_fixture_video_frames_are_decoded_at_their_timestamps(imported):
    for e, episode in enumerate(imported.episodes):
        images = imported.episode(e)["image"].astype(np.int16)
        for t in range(episode.length):
            errors = [np.abs(images[t] - fixture_frame(e, k)).mean() for k in range(episode.length)]
            assert int(np.argmin(errors)) == t, (e, t)  # its own frame, not a neighbour (8 levels apart)
            assert errors[t] < 4.0  # AV1's loss


def test_resize_and_choice_of_keys(tmp_path):
    import_lerobot(FIXTURE, tmp_path / "small", image_size=48, camera="observation.images.front")
    small = EpisodeStore(tmp_path / "small")
    assert small.image_size == (48, 48)
    assert abs(float(small.episode(0)["image"][:, :, :, 2].mean()) - float(fixture_frame(0, 0)[..., 2].mean())) < 100
    import_lerobot(FIXTURE, tmp_path / "swapped", state_key="action", action_key="observation.state")
    swapped = EpisodeStore(tmp_path / "swapped")
    assert swapped.dim("state") == 7 and swapped.dim("action") == 6


@pytest.mark.parametrize("kwargs, message", [
    ({"camera": "observation.images.wrist"}, r"no camera feature 'observation.images.wrist'; cameras are "
                                               r"observation.images.front"),
    ({"state_key": "observation.joints"}, r"no feature 'observation.joints' for the state; float features are "
                                          r"observation.state, action"),
    ({"action_key": "timestamp"}, r"no feature 'timestamp' for the action"),
    ({"action_key": "observation.images.front"}, r"feature 'observation.images.front' \(video, shape \[96, 96, 3\]\) "
                                                r"is not a float vector"),
])
def test_bad_keys_name_the_file_and_the_choices(tmp_path, kwargs, message):
    with pytest.raises(DatasetError, match=message):
        import_lerobot(FIXTURE, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_older_format_is_refused_by_version(tmp_path):
    src = tmp_path / "old"
    shutil.copytree(FIXTURE, src)
    info = json.loads((src / "meta" / "info.json").read_text())
    (src / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match=r"info\.json: codebase_version is 'v2\.1'; harmowam reads LeRobotDataset v3"):
        import_lerobot(src, tmp_path / "out")


def test_a_failed_import_leaves_the_existing_dataset(tmp_path, imported):
    out = tmp_path / "kept"
    import_lerobot(FIXTURE, out)
    before = (out / "meta.json").read_text()
    (tmp_path / "broken").mkdir()
    shutil.copytree(FIXTURE, tmp_path / "broken" / "src")
    for f in (tmp_path / "broken" / "src" / "videos").rglob("*.mp4"):
        f.write_bytes(f.read_bytes()[:2000])  # a truncated video
    with pytest.raises(Exception):
        import_lerobot(tmp_path / "broken" / "src", out, overwrite=True)
    assert (out / "meta.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def _windows(store: EpisodeStore) -> WindowDataset:
    spec = WindowSpec(num_future_frames=2, future_stride=2, action_horizon=4)
    return WindowDataset([store], [list(range(len(store)))], spec, Normalizer(store.stats, {"state": "mean_std",
                                                                                           "action": "min_max"}))


def test_metaworld_round_trip_gives_identical_windows(tiny_data, tmp_path):
    export_lerobot(tiny_data, tmp_path / "lerobot")
    import_lerobot(tmp_path / "lerobot", tmp_path / "back")
    a, b = EpisodeStore(tiny_data), EpisodeStore(tmp_path / "back")
    assert a.meta["generation"] == b.meta["generation"]  # camera, variation: evaluation renders the same scenes
    assert [(e.task, e.instruction, e.seed) for e in a.episodes] == [(e.task, e.instruction, e.seed) for e in b.episodes]
    wa, wb = _windows(a), _windows(b)
    assert len(wa) == len(wb)
    for i in range(len(wa)):
        sa, sb = wa[i], wb[i]
        for key, value in sa.items():
            if hasattr(value, "shape"):
                assert value.dtype == sb[key].dtype and bool((value == sb[key]).all()), (i, key)
            else:
                assert value == sb[key], (i, key)


def test_video_export_reimports_within_the_codec_loss(tiny_data, tmp_path):
    export_lerobot(tiny_data, tmp_path / "lerobot", video=True)
    info = json.loads((tmp_path / "lerobot" / "meta" / "info.json").read_text())
    assert info["features"]["observation.image"]["dtype"] == "video"
    import_lerobot(tmp_path / "lerobot", tmp_path / "back")
    a, b = EpisodeStore(tiny_data), EpisodeStore(tmp_path / "back")
    np.testing.assert_array_equal(a.arrays["action"], b.arrays["action"])
    np.testing.assert_array_equal(a.arrays["env_state"], b.arrays["env_state"])
    error = np.abs(a.arrays["image"].astype(np.int16) - b.arrays["image"].astype(np.int16)).mean()
    assert error < 6.0


def test_cli_import_and_export(tmp_path, capsys):
    assert harmowam_main(["data", "import-lerobot", str(FIXTURE), str(tmp_path / "in")]) == 0
    assert json.loads(capsys.readouterr().out)["action_dim"] == 7
    assert harmowam_main(["data", "export-lerobot", str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "meta" / "info.json").is_file()
    assert harmowam_main(["data", "export-lerobot", str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert harmowam_main(["data", "import-lerobot", str(tmp_path), str(tmp_path / "x")]) == 2
    assert "meta/info.json: no such file" in capsys.readouterr().err
