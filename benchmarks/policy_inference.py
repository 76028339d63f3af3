"""Latency of a trained policy's inference: one action chunk, per routing path, per precision.

    python benchmarks/policy_inference.py --ckpt runs/harmowam/version_0/checkpoints/last.ckpt --device cuda

For each path (the world model's features alone, its decoded frames, both as the policy
runs it: its ``world_model_steps`` and the frames its experts read; the predictive
expert's chunk, the reactive expert's chunk, and the gated policy) the median
wall-clock time of one call over ``--repeats`` calls after warm-up, in fp32 and (on
CUDA) bf16 autocast, optionally with the world model's transformer compiled. Each
path's time is reported beside the fp32 time of the same path measured in the same
run. The paper's figure for comparison: 48 Hz action generation with chunk size 12,
the world model alone at about 4 Hz with 5 denoising steps. Writes --out (JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from typing import Any, Callable

import torch

from harmowam.eval.policies import load_policy_checkpoint
from harmowam.gates.base import PREDICTIVE, REACTIVE
from harmowam.sim.tasks import TASKS


def _time(fn: Callable[[], Any], device: str, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time with the world model's transformer compiled")
    ap.add_argument("--out", default="benchmarks/policy_inference.json")
    args = ap.parse_args()

    policy = load_policy_checkpoint(args.ckpt, map_location=args.device).eval()
    wm = policy.world_model
    b, size = args.batch_size, policy.shapes.image_size
    gen = torch.Generator().manual_seed(0)
    obs = {"image": torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=gen),
           "state": torch.tensor([[0.0, 0.6, 0.2, 1.0]]).repeat(b, 1),
           "instruction": [TASKS["push"].instruction] * b}
    image = obs["image"].to(args.device)

    def expert_chunk(role: str) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                ctx = policy._base_context(image, policy.normalizer.normalize("state", obs["state"].to(args.device)),
                                           obs["instruction"])
                ctx.world_model = policy._imagine(ctx, set(policy.experts[role].needs))
                return policy.experts[role].predict(ctx)
        return run

    # the world model as the policy runs it: its denoising steps, and only the frames its experts read
    steps = policy.hparams.world_model_steps
    frames = policy._frames_to_decode(training=False) or True
    paths: dict[str, Callable[[], Any]] = {
        "world_model_features": lambda: wm.predict(image, obs["instruction"], decode=False, features=True,
                                                   num_steps=steps),
        "world_model_frames": lambda: wm.predict(image, obs["instruction"], decode=frames, features=False,
                                                 num_steps=steps),
        **{f"{role}_chunk": expert_chunk(role) for role in (PREDICTIVE, REACTIVE) if role in policy.experts},
        "gated_policy_chunk": lambda: policy.predict_action_chunk(obs),
    }
    precisions = ["fp32"] + (["bf16"] if args.device == "cuda" else [])
    results: dict[str, dict[str, float]] = {}
    for precision in precisions:
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
        with autocast, torch.no_grad():
            for name, fn in paths.items():
                results.setdefault(name, {})[precision] = _time(fn, args.device, args.repeats, args.warmup)
    if args.compile:
        wm.transformer = torch.compile(wm.transformer)
        for precision in precisions:
            autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if precision == "bf16"
                        else contextlib.nullcontext())
            with autocast, torch.no_grad():
                for name in ("world_model_features", "gated_policy_chunk"):
                    results[name][f"{precision}_compiled"] = _time(paths[name], args.device, args.repeats,
                                                                   args.warmup + 2)
    horizon = policy.shapes.action_horizon
    table = {}
    for name, row in results.items():
        table[name] = {k: {"median_s": v, "speedup_vs_fp32": row["fp32"] / v} for k, v in row.items()}
    chunk = results["gated_policy_chunk"]
    summary = {k: {"chunks_per_s": 1 / v, "actions_per_s_at_full_chunk": horizon / v} for k, v in chunk.items()}
    out = {"ckpt": args.ckpt, "device": args.device,
           "device_name": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor(),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "batch_size": b, "image_size": size,
           "action_horizon": horizon, "denoising_steps": steps or getattr(wm, "num_inference_steps", None),
           "repeats": args.repeats, "paths": table, "gated_policy": summary}
    print(json.dumps(out, indent=1))
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
