"""A stored demonstration replays: its seed and actions give back its states exactly and its frames.

If this fails, the policy is trained on observations the simulator does not produce
for the same scene (a reset, variation or rendering defect), and no amount of
training fixes that. Frames are compared up to the software renderer's noise (two
generations with one seed were seen to differ in 19 pixels of 2 frames out of 492).
"""

import numpy as np
import pytest

pytestmark = pytest.mark.sim


def replay(store, index: int, action_noise: float = 0.0):
    from harmowam.sim.env import render, reset_scene
    from harmowam.sim.generate import ActionNoise

    ep, info = store.episode(index), store.episodes[index]
    gen = store.meta["generation"]
    env, obs = reset_scene(info.task, gen["variation"], info.seed, gen["image_size"], gen["camera"])
    perturb = ActionNoise(info.seed, action_noise)
    states, frames = [], []
    for action in ep["action"]:
        states.append(obs[:39].astype(np.float32))
        frames.append(render(env))
        obs, *_ = env.step(perturb(action))
    return ep, np.stack(states), np.stack(frames)


def _check(ep, states, frames):
    np.testing.assert_array_equal(states, ep["env_state"])
    differing = (np.abs(frames.astype(int) - ep["image"].astype(int)).max(axis=-1) > 8).sum()
    assert differing <= 0.001 * frames[..., 0].size, f"{differing} pixels differ from the stored frames"


def test_stored_demonstrations_replay_exactly(tiny_data):
    from harmowam.data.format import EpisodeStore

    store = EpisodeStore(tiny_data)
    for index in range(len(store.episodes)):
        _check(*replay(store, index))


def test_dart_demonstrations_store_clean_actions_and_replay_with_their_noise(tmp_path):
    from harmowam.data.format import EpisodeStore
    from harmowam.sim.env import expert_policy, reset_scene
    from harmowam.sim.generate import GenerationConfig, generate

    out = generate(tmp_path / "dart", GenerationConfig(tasks=["push"], episodes=1, image_size=32, workers=1,
                                                       action_noise=0.3), progress=False)
    store = EpisodeStore(out)
    assert store.meta["generation"]["action_noise"] == 0.3
    ep, states, frames = replay(store, 0, action_noise=0.3)
    _check(ep, states, frames)
    # the stored action is the expert's clean action for each visited state
    policy = expert_policy("push")
    clean = np.stack([np.clip(policy.get_action(s.astype(np.float64)), -1, 1) for s in ep["env_state"]])
    np.testing.assert_allclose(clean, ep["action"], atol=1e-4)
    # and the visited states are not those of the noise-free expert from the same seed
    env, obs = reset_scene("push", store.meta["generation"]["variation"], store.episodes[0].seed, 32, "corner4")
    for action in ep["action"][:10]:
        obs, *_ = env.step(action)
    assert not np.allclose(obs[:39], ep["env_state"][10])


def test_first_observation_and_frame_show_the_scene_as_it_is():
    """Meta-World's reset moves the drawer and the goal marker after its last forward pass: without a fix the
    first observation put drawer-open's handle 3 cm from where the first step found it, and the first frame drew
    the scene of a discarded random draw. Nothing may move on a zero action right after a reset."""
    from harmowam.sim.env import render, reset_scene
    from harmowam.sim.tasks import list_tasks

    for task in list_tasks():
        reset_scene(task, {}, 5, 32)  # an earlier episode in the same environment
        env, first = reset_scene(task, {}, 6, 32)
        first_frame = render(env)
        after, *_ = env.step(np.zeros(4))
        moved = np.abs(after[:18] - first[:18]).max()
        assert moved < 1e-3, f"{task}: the first observation is {moved:.3f} from the scene one step later"
        changed = (np.abs(render(env).astype(int) - first_frame.astype(int)).max(axis=-1) > 8).sum()
        assert changed <= 12, f"{task}: {changed} pixels of the first frame change on a zero action"
