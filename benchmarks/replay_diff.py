"""Where does a policy part from a stored demonstration? Step-by-step diff of a replayed episode.

    python benchmarks/replay_diff.py --ckpt runs/overfit_2ep_1500steps/version_0/checkpoints/last.ckpt \
        --data data/overfit_2 --task push

Rolls the checkpoint out from each stored episode's own seed and scene (as
``overfit_replay.py`` does) and prints, every ``--every`` steps and at the first step
where the hand is more than 1 cm from the demonstration's, the expert in control, the
hand's and the object's distance from where they were in the demonstration at the same
step, the hand-object distance, the gripper opening, and the action's difference from
the demonstration's action. Run it in the folder the data paths are relative to.
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="a stage-2 policy checkpoint")
    ap.add_argument("--data", required=True, help="the dataset folder whose episodes are replayed")
    ap.add_argument("--task", default=None, help="only this task's episodes")
    ap.add_argument("--n-action-steps", type=int, default=8)
    ap.add_argument("--every", type=int, default=8, help="print every this many steps")
    ap.add_argument("--extra-steps", type=int, default=40, help="steps allowed beyond the demonstration's length")
    args = ap.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")

    from harmowam.data.format import EpisodeStore
    from harmowam.eval.policies import CheckpointPolicy
    from harmowam.sim.env import render, reset_scene

    store = EpisodeStore(args.data)
    gen = store.meta["generation"]
    policy = CheckpointPolicy(args.ckpt, name="replay", n_action_steps=args.n_action_steps)
    for ep in store.episodes:
        if args.task is not None and ep.task != args.task:
            continue
        demo = store.episode(ep.index)
        env, obs = reset_scene(ep.task, gen["variation"], ep.seed, gen["image_size"], gen["camera"])
        policy.reset(0, ep.task, ep.seed)
        first_off, success_at = None, None
        for t in range(ep.length + args.extra_steps):
            actions, experts = policy.act([0], [{"image": render(env), "state": obs[:4], "env_obs": obs,
                                                 "instruction": ep.instruction}])
            action, expert = actions[0], experts[0]
            if t < ep.length:
                ref = demo["env_state"][t]
                hand_off = float(np.linalg.norm(obs[:3] - ref[:3]))
                newly_off = first_off is None and hand_off > 0.01
                if newly_off:
                    first_off = t
                if t % args.every == 0 or newly_off:
                    print(f"{ep.task} seed {ep.seed} t={t:3d} {expert:10s} hand off the demo {100 * hand_off:4.1f} cm, "
                          f"object off {100 * np.linalg.norm(obs[4:7] - ref[4:7]):4.1f} cm, "
                          f"hand-object {100 * np.linalg.norm(obs[:3] - obs[4:7]):4.1f} cm, "
                          f"gripper {obs[3]:.2f} (demo {ref[3]:.2f}), "
                          "|action - demo's| [" + ", ".join(f"{x:.2f}" for x in np.abs(action - demo["action"][t])) + "]",
                          flush=True)
            obs, _, _, _, info = env.step(np.asarray(action, dtype=np.float64))
            if info.get("success", 0.0) >= 1.0:
                success_at = t
                break
        print(f"{ep.task} seed {ep.seed}: demonstration {ep.length} steps; hand first more than 1 cm off at "
              f"t={first_off}; " + (f"success at t={success_at}" if success_at is not None else
                                     f"no success in {ep.length + args.extra_steps} steps"), flush=True)


if __name__ == "__main__":
    main()
