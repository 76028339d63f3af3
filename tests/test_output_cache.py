"""The stage-2 cache of world-model outputs: what it stores, when it is reused, when it is rebuilt."""

import numpy as np
import pytest
import torch

from conftest import write_synthetic
from harmowam.data import EpisodeStore
from harmowam.world_models.output_cache import CacheOptions, WorldModelOutputCache, pool_tokens
from test_world_model import tiny_model


@pytest.fixture()
def setup(tmp_path):
    store = EpisodeStore(write_synthetic(tmp_path / "data", [7, 5], image_size=32))
    return tmp_path / "cache", tiny_model().eval(), [store]


def test_cached_outputs_equal_the_world_models_own(setup):
    root, wm, stores = setup
    opts = CacheOptions(samples_per_frame=2, feature_tokens=4, frames=True)
    cache = WorldModelOutputCache.build_or_load(root, wm, stores, opts, batch_size=8, log=False)
    images = torch.from_numpy(np.array(stores[0].arrays["image"][:8])).permute(0, 3, 1, 2)
    texts = [stores[0].episodes[0].instruction] * 8  # all synthetic episodes share one instruction
    for sample in range(2):
        gen = torch.Generator().manual_seed(sample * 7919)
        direct = wm.predict(images, texts, decode=True, features=True, generator=gen)
        got = cache.lookup(torch.arange(8), torch.full((8,), sample))
        torch.testing.assert_close(got.features, pool_tokens(direct.features, 4), atol=2e-2, rtol=1e-2)
        assert (got.frames - direct.frames).abs().max() <= 1 / 127.5 + 1e-6  # uint8 rounding only
    a = cache.lookup(torch.arange(8), torch.zeros(8, dtype=torch.long)).features
    b = cache.lookup(torch.arange(8), torch.ones(8, dtype=torch.long)).features
    assert not torch.allclose(a, b)  # samples differ by their noise


def test_reused_for_the_same_inputs_rebuilt_when_weights_data_or_options_change(setup, tmp_path):
    root, wm, stores = setup
    opts = CacheOptions(samples_per_frame=1, feature_tokens=2)
    first = WorldModelOutputCache.build_or_load(root, wm, stores, opts, log=False)
    assert WorldModelOutputCache.build_or_load(root, wm, stores, opts, log=False).path == first.path
    assert first.frames is None  # frames only when asked for
    other_opts = WorldModelOutputCache.build_or_load(root, wm, stores, CacheOptions(samples_per_frame=1, feature_tokens=2,
                                                                                   num_steps=1), log=False)
    with torch.no_grad():
        wm.transformer.proj_out.bias.add_(0.1)
    other_weights = WorldModelOutputCache.build_or_load(root, wm, stores, opts, log=False)
    more_data = [EpisodeStore(write_synthetic(tmp_path / "more", [7, 6], image_size=32))]
    other_data = WorldModelOutputCache.build_or_load(root, wm, more_data, opts, log=False)
    paths = {first.path, other_opts.path, other_weights.path, other_data.path}
    assert len(paths) == 4
    assert not list(root.glob("*.tmp-*"))


def test_a_failed_build_leaves_nothing_that_reads_as_finished(tmp_path):
    from harmowam.data.format import EpisodeWriter

    rng = np.random.default_rng(0)
    writer = EpisodeWriter(tmp_path / "data", 32)
    for instruction in ("push the puck to the goal", "juggle three oranges"):  # the second is not in the vocabulary
        writer.add_episode({"image": rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8),
                            "state": rng.normal(size=(6, 4)).astype(np.float32),
                            "env_state": rng.normal(size=(6, 39)).astype(np.float32),
                            "action": rng.uniform(-1, 1, (6, 4)).astype(np.float32)}, "push", instruction, 0)
    stores = [EpisodeStore(writer.close())]
    root = tmp_path / "cache"
    with pytest.raises(KeyError, match="juggle three oranges"):  # fails after the first batch was written
        WorldModelOutputCache.build_or_load(root, tiny_model().eval(), stores, CacheOptions(), batch_size=4, log=False)
    assert not list(root.iterdir())


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="samples_per_frame"):
        CacheOptions(samples_per_frame=0)


def test_a_cache_built_with_more_serves_a_run_that_reads_less(setup, tmp_path):
    root, wm, stores = setup
    full = WorldModelOutputCache.build_or_load(root, wm, stores, CacheOptions(samples_per_frame=2, feature_tokens=4,
                                                                              frames=True), batch_size=8, log=False)
    subset = CacheOptions(samples_per_frame=1, feature_tokens=1, frames=False)
    served = WorldModelOutputCache.build_or_load(root, wm, stores, subset, batch_size=8, log=False)
    assert served.path == full.path and len(list(root.iterdir())) == 1  # nothing new was built
    assert served.frames is None and served.samples_per_frame == 1
    own = WorldModelOutputCache.build_or_load(tmp_path / "own", wm, stores, subset, batch_size=8, log=False)
    idx = torch.arange(12)
    got, want = served.lookup(idx, torch.zeros(12, dtype=torch.long)), own.lookup(idx, torch.zeros(12, dtype=torch.long))
    assert got.features.shape == want.features.shape == (12, wm.num_future_frames, 1, wm.feature_dim)
    torch.testing.assert_close(got.features, want.features, atol=2e-2, rtol=1e-2)  # float16 rounding of the means
    with pytest.raises(IndexError, match="1 per frame"):
        served.lookup(idx[:2], torch.ones(2, dtype=torch.long))
    # what the cache lacks is built: frames with more samples than it holds
    more = WorldModelOutputCache.build_or_load(root, wm, stores, CacheOptions(samples_per_frame=3, feature_tokens=4,
                                                                              frames=True), batch_size=8, log=False)
    assert more.path != full.path


def test_stores_only_the_frames_asked_for_and_serves_fewer_not_more(setup):
    root, wm, stores = setup  # the tiny world model predicts 2 frames
    one = WorldModelOutputCache.build_or_load(root, wm, stores, CacheOptions(samples_per_frame=1, frames=1),
                                              batch_size=8, log=False)
    got = one.lookup(torch.arange(4), torch.zeros(4, dtype=torch.long))
    assert got.frames.shape == (4, 1, 3, 32, 32)
    all_frames = WorldModelOutputCache.build_or_load(root, wm, stores, CacheOptions(samples_per_frame=1, frames=True),
                                                     batch_size=8, log=False)
    assert all_frames.path != one.path and all_frames.frames.shape[2] == 2  # one frame cannot serve two
    again = WorldModelOutputCache.build_or_load(root, wm, stores, CacheOptions(samples_per_frame=1, frames=1),
                                                batch_size=8, log=False)
    assert again.path in (one.path, all_frames.path)
    with pytest.raises(ValueError, match="decode=3"):
        WorldModelOutputCache.build_or_load(root, wm, stores, CacheOptions(samples_per_frame=1, frames=3), log=False)
