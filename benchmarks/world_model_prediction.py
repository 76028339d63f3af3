"""Prediction error of a trained world model against the copy-the-last-frame baseline.

    python benchmarks/world_model_prediction.py --model checkpoints/world_model --data data/demos data/wm_video

Samples futures for the validation windows of the given data (the same split as
training, seed 0) and prints the pixel MSE of
the predicted frames beside the copy baseline and the VAE floor; medians over batches and the ratio
to the copy baseline measured on the same windows. Writes the numbers to --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from harmowam.data import EpisodeDataModule
from harmowam.world_models.base import to_unit_range
from harmowam.world_models.loading import load_world_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="checkpoints/world_model")
    ap.add_argument("--data", nargs="+", default=["data/demos", "data/wm_video"])
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=24)
    ap.add_argument("--out", default="benchmarks/world_model_prediction.json")
    args = ap.parse_args()

    wm = load_world_model(args.model).eval()
    dm = EpisodeDataModule(args.data, num_future_frames=wm.num_future_frames, future_stride=wm.frame_stride,
                           batch_size=args.batch_size)
    dm.setup("fit")
    rows: dict[str, list[float]] = {"predicted": [], "copy": [], "vae_floor": [], "seconds": []}
    for i, batch in enumerate(dm.val_dataloader()):
        if i >= args.batches:
            break
        image, real, mask = batch["image"][:, -1], to_unit_range(batch["future_image"]), batch["future_mask"].float()

        def mse(pred: torch.Tensor) -> float:
            err = (pred - real).pow(2).mean(dim=(2, 3, 4))
            return float((err * mask).sum() / mask.sum().clamp_min(1))

        t0 = time.perf_counter()
        with torch.no_grad():
            out = wm.predict(image, list(batch["instruction"]), features=False, generator=torch.Generator().manual_seed(i))
            rows["seconds"].append(time.perf_counter() - t0)  # sampling and decoding one batch
            rows["predicted"].append(mse(out.frames))
            rows["copy"].append(mse(to_unit_range(image)[:, None].expand_as(real)))
            rows["vae_floor"].append(mse(wm.decode(wm.encode(batch["future_image"]))))
    med = {k: statistics.median(v) for k, v in rows.items()}
    result = {"model": args.model, "data": args.data, "batches": len(rows["copy"]), "median": med,
              "ratio_to_copy": {k: med[k] / med["copy"] for k in ("predicted", "vae_floor")}}
    print(json.dumps(result, indent=1))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
