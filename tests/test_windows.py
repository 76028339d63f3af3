import numpy as np
import pytest
import torch

from conftest import write_synthetic
from harmowam.data import EpisodeDataModule, EpisodeStore, Normalizer, WindowDataset, WindowSpec


@pytest.fixture()
def store(tmp_path):
    return EpisodeStore(write_synthetic(tmp_path / "ds", [20, 24]))


def test_padded_windows_at_episode_end(store):
    spec = WindowSpec(num_history=2, num_future_frames=3, future_stride=2, action_horizon=5, pad_end=True)
    ds = WindowDataset([store], [[0, 1]], spec)
    assert len(ds) == 44  # every step is an anchor
    last = ds[19]  # episode 0, step 19 (its last)
    ep0 = store.episode(0)
    assert not last["future_mask"].any()
    assert last["action_mask"].tolist() == [True, False, False, False, False]
    # padding repeats the last frame and action
    assert torch.equal(last["future_image"][2], torch.from_numpy(ep0["image"][19]).permute(2, 0, 1))
    assert torch.equal(last["action"][4], torch.from_numpy(ep0["action"][19]))
    mid = ds[16]  # step 16: futures at 18, 20 (beyond), 22 (beyond)
    assert mid["future_mask"].tolist() == [True, False, False]
    assert mid["future_index"].tolist() == [18, 19, 19]
    first = ds[0]
    assert first["history_mask"].tolist() == [False, True]
    assert torch.equal(first["image"][0], first["image"][1])
    # windows never cross into the next episode
    assert ds[20]["frame_index"].item() == 20 and ds[20]["step"].item() == 0


def test_unpadded_windows_are_excluded_at_episode_end(store):
    spec = WindowSpec(num_history=1, num_future_frames=3, future_stride=2, action_horizon=5, pad_end=False)
    ds = WindowDataset([store], [[0, 1]], spec)
    assert len(ds) == (20 - 6) + (24 - 6)
    for i in range(len(ds)):
        s = ds[i]
        assert s["future_mask"].all() and s["action_mask"].all()


def test_split_is_by_episode(tmp_path):
    path = write_synthetic(tmp_path / "ds", [20] * 10)
    dm = EpisodeDataModule(str(path), num_future_frames=2, future_stride=2, action_horizon=4, val_fraction=0.3)
    dm.setup("fit")
    train_eps = {int(e) for _, e, _ in dm.train_set.index}
    val_eps = {int(e) for _, e, _ in dm.val_set.index}
    assert len(val_eps) == 3 and len(train_eps) == 7 and not train_eps & val_eps
    batch = next(iter(dm.train_dataloader()))
    assert batch["action"].shape == (32, 4, 4) and batch["future_image"].shape == (32, 2, 3, 16, 16)
    # validation: a fixed shuffle, so a prefix of batches spans episodes and is the same every time
    first = next(iter(dm.val_dataloader()))["frame_index"]
    assert torch.equal(first, next(iter(dm.val_dataloader()))["frame_index"])
    starts = [e.start for e in dm.stores[0].episodes]
    episodes = {int(np.searchsorted(starts, f, side="right")) - 1 for f in first.tolist()}
    assert len(episodes) == 3  # 32 of the 60 validation windows span all three validation episodes


def test_normalizer_round_trip_and_ranges(store):
    norm = Normalizer(store.stats, {"state": "mean_std", "action": "min_max"})
    actions = torch.from_numpy(np.concatenate([store.episode(i)["action"] for i in range(2)]))
    normed = norm.normalize("action", actions)
    assert normed.min() >= -1 - 1e-5 and normed.max() <= 1 + 1e-5
    torch.testing.assert_close(norm.unnormalize("action", normed), actions)
    with pytest.raises(ValueError, match="modes"):
        Normalizer(store.stats, {"state": "zscore"})


def test_phase_labels_are_attached(tmp_path):
    path = write_synthetic(tmp_path / "ds", [20, 20])
    dm = EpisodeDataModule(str(path), num_future_frames=2, future_stride=2, action_horizon=4,
                           label_strategy={"name": "gripper_events", "window": 2})
    dm.setup("fit")
    assert "phase_label" in dm.train_set[0]
