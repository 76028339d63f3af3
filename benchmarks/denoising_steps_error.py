"""Does the predictive expert's sampler cost precision? Action error on demonstration states per denoising-step count.

    python benchmarks/denoising_steps_error.py --ckpt runs/overfit_2ep_1500steps/version_0/checkpoints/last.ckpt \\
        --data data/overfit_2

Feeds a checkpoint's policy the stored observations of every episode in ``--data``
(its first ``--states`` steps), replanning at every step, and compares the first action
of each chunk with the demonstration's: the reactive expert alone once, then the
predictive expert alone with each of ``--steps`` DDIM inference steps. With the
clean-chunk target one step is a plain regression from the context; if more steps do
not lower the error, the sampler is not what limits the expert, its context is.
Prints the mean absolute error per task and writes ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from overfit_replay import demo_action_error  # benchmarks/ is the script's folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="a stage-2 checkpoint with a predictive and a reactive expert")
    ap.add_argument("--data", required=True, help="an episode folder (for example the one the checkpoint memorised)")
    ap.add_argument("--states", type=int, default=30, help="stored observations per episode")
    ap.add_argument("--steps", default="1,2,5,10,20", help="DDIM inference step counts to try, comma-separated")
    ap.add_argument("--out", default="denoising_steps_error.json")
    args = ap.parse_args()

    from harmowam.data.format import EpisodeStore
    from harmowam.eval.policies import CheckpointPolicy
    from harmowam.gates.fixed import ConstantGate

    store = EpisodeStore(args.data)
    policy = CheckpointPolicy(Path(args.ckpt), name="denoising_steps_error", n_action_steps=1)
    schedule = policy.module.experts["predictive"].schedule
    rows: dict[str, dict[str, list[float]]] = {}
    for role, steps in [("reactive", None), *(("predictive", int(s)) for s in args.steps.split(","))]:
        policy.module.gate = ConstantGate(policy.module.shapes, 1.0 if role == "predictive" else 0.0)
        if steps is not None:
            schedule.num_inference_steps = steps
        name = role if steps is None else f"predictive, {steps} DDIM steps"
        rows[name] = {}
        for ep in store.episodes:  # one error per episode, grouped by task
            error = demo_action_error(policy, ep, store.episode(ep.index), args.states)
            rows[name].setdefault(ep.task, []).append(error)
        print(f"{name:28s} " + "  ".join(f"{task} {np.mean(v):.4f}" for task, v in rows[name].items()), flush=True)
    Path(args.out).write_text(json.dumps({"ckpt": args.ckpt, "data": args.data, "states": args.states,
                                          "mean_abs_action_error": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
