"""Evaluation throughput: environment steps per second of wall-clock, per inference mode, in one run.

    python benchmarks/eval_throughput.py --ckpt runs/pipeline/quick/runs/harmowam/version_0/checkpoints/last.ckpt
    python benchmarks/eval_throughput.py --ckpt ... --device cuda --workers 12 --envs 48   # on a GPU machine

Rolls the checkpoint out on the same episodes in each mode (``workers``: a policy copy per environment
process; ``batched``: ``--envs`` episodes in flight and one batched policy call per control step) and,
for reference, the simulator alone (the scripted expert, which reads no image; its frames are still
rendered for the comparison). Prints a table and writes benchmarks/eval_throughput_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from harmowam.eval.runner import EvalConfig, PolicySpec, evaluate
from stage2_throughput import cpu_model  # benchmarks/ is on the path when this file runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tasks", default="push,drawer-open,button-press-topdown")
    ap.add_argument("--episodes", type=int, default=6, help="per task (in-domain)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--modes", default="workers,batched")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            cfg = EvalConfig(tasks=args.tasks, conditions="in_domain", episodes=args.episodes, workers=args.workers,
                             inference=mode, envs=args.envs, videos=0, timelines=False, tensorboard=False,
                             out=Path(tmp) / mode)
            spec = PolicySpec("checkpoint", path=args.ckpt, name="policy", device=args.device)
            run = evaluate([spec], cfg, progress=False)["run"]
            rows[mode] = {"env_steps": run["env_steps"], "wall_s": run["wall_s"],
                          "env_steps_per_s": run["env_steps_per_s"], "how": run["mode"]}
    base = rows.get("workers", next(iter(rows.values())))["env_steps_per_s"]
    print("\n| mode | episodes | env steps | wall s | env steps / s | vs workers |\n|---|---|---|---|---|---|")
    episodes = args.episodes * len(args.tasks.split(","))
    for mode, r in rows.items():
        print(f"| {mode} ({r['how']}) | {episodes} | {r['env_steps']} | {r['wall_s']:.0f} | {r['env_steps_per_s']:.1f} "
              f"| {r['env_steps_per_s'] / base:.2f}x |")
    out = Path(args.out or Path(__file__).with_name(f"eval_throughput_{args.device.split(':')[0]}.json"))
    out.write_text(json.dumps({"ckpt": args.ckpt, "device": args.device, "cpu": cpu_model(),
                               "episodes": episodes, "workers": args.workers, "envs": args.envs, "rows": rows},
                              indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
