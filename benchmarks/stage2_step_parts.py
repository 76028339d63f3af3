"""Where a cached stage-2 step goes: forward and backward of each part, and the whole step in bf16.

    python benchmarks/stage2_step_parts.py --workdir runs/pipeline/quick

With the world model's outputs read from the cache (the shipped path), what is left of
an optimiser step is the trainable modules themselves. This times, at the config's
batch size on the first batches of ``<workdir>/data/demos``: forward and backward of the
shared image encoder, of each expert's loss (on a context computed without gradients)
and of the gate's loss; then the whole step (context, losses, backward, AdamW) in
float32 and under CPU bf16 autocast with the flash and the math attention kernels.
Prints medians over ``--steps`` repetitions and writes them to ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

REPO = Path(__file__).resolve().parents[1]


def median_s(fn: Callable[[], None], steps: int, warmup: int = 2) -> float:
    times = []
    for _ in range(warmup + steps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times[warmup:]), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="runs/pipeline/quick", help="folder with data/demos and checkpoints/world_model")
    ap.add_argument("--config", default=str(REPO / "experiments" / "harmowam.yaml"))
    ap.add_argument("--steps", type=int, default=8, help="timed repetitions of each measurement")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "stage2_step_parts_cpu.json"))
    args = ap.parse_args()

    from harmowam.cli import build_cli
    from stage2_throughput import cpu_model  # noqa: E402  (benchmarks/ is the script's folder)

    # paths given relative to where the script was launched, before moving into the workdir
    args.config, args.out = str(Path(args.config).resolve()), str(Path(args.out).resolve())
    os.chdir(args.workdir)
    torch.manual_seed(0)
    cli = build_cli(["-c", args.config, "--trainer.logger=false", "--trainer.enable_checkpointing=false",
                     "--trainer.callbacks=null", "--trainer.enable_progress_bar=false", "--trainer.limit_val_batches=0",
                     "--trainer.max_steps=1", "--trainer.max_time=null", "--trainer.enable_model_summary=false",
                     "--model.init_args.world_model_cache={samples_per_frame: 1}"], run=False)
    model, data = cli.model, cli.datamodule
    L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              limit_val_batches=0, enable_model_summary=False).fit(model, datamodule=data)  # builds or reads the cache
    model.train()
    model.log = model.log_dict = lambda *a, **k: None  # outside a trainer loop
    params = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("world_model.")]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
    batches = iter(data.train_dataloader())
    batch = next(batches)

    def backward(loss: torch.Tensor) -> None:
        loss.backward()
        opt.zero_grad(set_to_none=True)

    with torch.no_grad():
        ctx = model._train_context(batch, augment=True)
    image = batch["image"][:, -1]
    parts = {"shared image encoder": lambda: backward(model.image_encoder(image).square().mean())}
    for role, expert in model.experts.items():
        parts[f"{role} expert loss"] = (
            lambda e=expert: backward(e.compute_loss(ctx, batch["action"], batch["action_mask"])[0]))
    if model.gate.learned:
        tokens = ctx.image_tokens.detach().requires_grad_()
        parts["gate loss"] = lambda: backward(model.gate.loss(tokens, batch["phase_label"], ctx.state))

    def step(bf16: bool, kernel: SDPBackend) -> Callable[[], None]:
        def run() -> None:
            b = next(batches)
            with sdpa_kernel(kernel), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model._losses(b, model._train_context(b, augment=True), "train")
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return run

    results: dict[str, float] = {}
    for name, fn in parts.items():
        results[name] = median_s(fn, args.steps)
        print(f"{name:32s} forward+backward {results[name]:.4f} s", flush=True)
    for name, bf16, kernel in (("step, float32", False, SDPBackend.FLASH_ATTENTION),
                               ("step, bf16 autocast, flash attention", True, SDPBackend.FLASH_ATTENTION),
                               ("step, bf16 autocast, math attention", True, SDPBackend.MATH)):
        results[name] = median_s(step(bf16, kernel), args.steps)
        print(f"{name:38s} {results[name]:.4f} s ({results['step, float32'] / results[name]:.2f}x float32)", flush=True)
    report = {"config": args.config, "workdir": str(Path.cwd()), "batch_size": len(image), "steps": args.steps,
              "threads": torch.get_num_threads(), "cpu": cpu_model(), "torch": torch.__version__,
              "median_s": results}
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
