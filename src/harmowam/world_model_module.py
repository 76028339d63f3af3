"""Stages 0 and 1 as one LightningModule: train the VAE, freeze it, then the video denoiser.

For the first ``vae_steps`` optimisation steps only the VAE learns. At the switch the
VAE is frozen, every frame of the datamodule is encoded once into a latent cache
(and the per-channel latent statistics are fitted), and from then on the denoiser
learns by conditional flow matching on cached latents. ``vae_steps=0`` with a
``pretrained`` world model skips stage 0.

Validation after the switch samples futures and logs the pixel MSE of the predicted
frames (``val/pred_mse``), the copy-the-last-frame baseline and the VAE's reconstruction
floor on the same frames, and an image of real beside predicted clips.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torchvision
from lightning.pytorch.strategies import DDPStrategy

from harmowam.data.shapes import data_shapes
from harmowam.files import FolderLock, replace_folder
from harmowam.registry import build_component
from harmowam.training.rng_state import ResumesRandomState
from harmowam.world_models.base import WorldModel, to_unit_range


class WorldModelModule(ResumesRandomState, L.LightningModule):
    def __init__(
        self,
        world_model: dict[str, Any] | str = "latent_flow",
        pretrained: str | None = None,
        vae_steps: int = 400,
        lr: float = 5e-4,
        vae_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_steps: int = 50,
        kl_weight: float = 1e-6,
        vae_batch_frames: int = 32,
        num_val_clips: int = 4,
        export_dir: str | None = "checkpoints/world_model",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if pretrained:
            from harmowam.world_models.latent_flow import LatentVideoWorldModel

            self.world_model: WorldModel = LatentVideoWorldModel.from_pretrained(pretrained)
        else:
            self.world_model = build_component("world_model", world_model)
        self._latents: torch.Tensor | None = None  # [num_frames, C, h, w], built at the switch

    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy):
            # The VAE phase leaves the transformer without gradients and the denoiser phase the frozen VAE:
            # DDP must expect parameters without gradients (set before Lightning wraps the module)
            strategy._ddp_kwargs["find_unused_parameters"] = True
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return
        dm.setup(stage)
        wm, spec = self.world_model, dm.spec
        size = data_shapes(dm.stores).image_size
        if size != wm.image_size:
            raise ValueError(f"{dm.stores[0].path} holds {size} px frames but the world model is built for "
                             f"{wm.image_size} px: leave world_model.image_size unset to take it from the data")
        if (spec.num_future_frames, spec.future_stride) != (wm.num_future_frames, wm.frame_stride):
            raise ValueError(
                f"data gives {spec.num_future_frames} future frames at stride {spec.future_stride}; the world model "
                f"predicts {wm.num_future_frames} at stride {wm.frame_stride}: set both to the same values"
            )

    # -- phases ------------------------------------------------------------------------------
    @property
    def in_vae_phase(self) -> bool:
        if self.trainer.state.fn != "fit":
            return False  # `lightning validate/test` of a trained checkpoint: evaluate the world model
        return self.global_step < self.hparams.vae_steps

    def _freeze_vae_and_cache(self) -> None:
        """Freeze the VAE, encode every frame once, fit latent statistics, keep the cache."""
        wm = self.world_model
        wm.vae.requires_grad_(False).eval()
        dm = self.trainer.datamodule
        t0 = time.perf_counter()
        raw = torch.empty(dm.num_frames, wm.vae.config.latent_channels, wm.latent_size, wm.latent_size)
        with torch.no_grad():
            for start, frames in dm.iter_frames(256):
                raw[start:start + len(frames)] = wm.encode_raw(frames.to(self.device)).cpu()
        if self.hparams.vae_steps > 0:  # a pretrained model keeps its calibration
            wm.calibrate_latents(raw)
        self._latents = wm.normalize_latents(raw)
        print(f"[world model] step {self.global_step}: VAE done and frozen; latents of {dm.num_frames} frames cached in "
              f"{time.perf_counter() - t0:.0f} s; the denoiser trains from here", flush=True)

    def _latents_for(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """cond ``[B, C, 1, h, w]`` and future ``[B, C, K, h, w]`` latents for a batch."""
        if self._latents is None:
            self._freeze_vae_and_cache()
        idx = torch.cat([batch["frame_index"][:, None], batch["future_index"]], dim=1).cpu()
        z = self._latents[idx].to(self.device).transpose(1, 2)  # [B, C, 1+K, h, w]
        return z[:, :, :1], z[:, :, 1:]

    # -- training ----------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.in_vae_phase:
            frames = torch.cat([batch["image"][:, -1:], batch["future_image"]], dim=1).flatten(0, 1)
            frames = frames[torch.randperm(len(frames), device=frames.device)[: self.hparams.vae_batch_frames]]
            loss, logs = self.world_model.vae_loss(frames, self.hparams.kl_weight)
            self.log_dict({f"train/{k}": v for k, v in logs.items()}, batch_size=len(frames))
            self.log("train/vae_loss", loss, prog_bar=True, batch_size=len(frames))
            return loss
        cond, future = self._latents_for(batch)
        loss = self.world_model.flow_matching_loss(cond, future, list(batch["instruction"]), batch["future_mask"])
        self.log("train/flow_loss", loss, prog_bar=True, batch_size=len(cond))
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        wm = self.world_model
        stage = "test" if self.trainer.testing else "val"
        current = batch["image"][:, -1]
        real = to_unit_range(batch["future_image"])  # [B, K, 3, H, W]
        mask = batch["future_mask"].float()

        def masked_mse(pred: torch.Tensor) -> torch.Tensor:
            err = (pred - real).pow(2).mean(dim=(2, 3, 4))
            return (err * mask).sum() / mask.sum().clamp_min(1)

        b = len(current)
        recon = wm.decode(wm.encode(batch["future_image"]))
        self.log(f"{stage}/vae_floor_mse", masked_mse(recon), batch_size=b, sync_dist=True)
        if self.in_vae_phase:
            return
        gen = torch.Generator(device=self.device).manual_seed(batch_idx)
        frames = wm.predict(current, list(batch["instruction"]), decode=True, features=False, generator=gen).frames
        copy = to_unit_range(current)[:, None].expand_as(real)
        pred_mse, copy_mse = masked_mse(frames), masked_mse(copy)
        self.log(f"{stage}/pred_mse", pred_mse, prog_bar=True, batch_size=b, sync_dist=True)
        self.log(f"{stage}/copy_baseline_mse", copy_mse, batch_size=b, sync_dist=True)
        self.log(f"{stage}/pred_over_copy", pred_mse / copy_mse.clamp_min(1e-8), batch_size=b, sync_dist=True)
        if batch_idx == 0:
            self._log_clips(current, real, frames)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
        """Imagined futures for the batch's current frames."""
        return self.world_model.predict(batch["image"][:, -1], list(batch["instruction"]))

    def _log_clips(self, current: torch.Tensor, real: torch.Tensor, pred: torch.Tensor) -> None:
        logger = self.logger
        if logger is None or not hasattr(logger.experiment, "add_image"):
            return
        n = min(self.hparams.num_val_clips, len(current))
        cur = to_unit_range(current[:n])[:, None]
        rows = []
        for i in range(n):  # row pairs: real clip, then predicted clip, each after the current frame
            rows.append(torch.cat([cur[i], real[i]], 0))
            rows.append(torch.cat([cur[i], pred[i]], 0))
        grid = torchvision.utils.make_grid(torch.cat(rows).add(1).div(2).clamp(0, 1), nrow=real.shape[1] + 1)
        logger.experiment.add_image("val/real_vs_predicted", grid, self.global_step)

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        wm = self.world_model
        vae_params = list(wm.vae.parameters())
        vae_ids = {id(p) for p in vae_params}
        other = [p for p in wm.parameters() if id(p) not in vae_ids]
        opt = torch.optim.AdamW(
            [{"params": vae_params, "lr": self.hparams.vae_lr}, {"params": other, "lr": self.hparams.lr}],
            weight_decay=self.hparams.weight_decay,
        )
        warm, switch = max(self.hparams.warmup_steps, 1), self.hparams.vae_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, [lambda s: min(1.0, (s + 1) / warm), lambda s: min(1.0, max(s - switch + 1, 0) / warm)]
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_fit_end(self) -> None:
        """Export the trained world model (``save_pretrained``) where stage 2 reads it, and into the run folder:
        once, by rank 0, between barriers, so that under DDP no process leaves while it writes."""
        run_dir = self.trainer.log_dir or self.trainer.default_root_dir  # a collective under DDP: every rank asks
        self.trainer.strategy.barrier("world_model_export_start")
        if self.trainer.is_global_zero:
            targets = [Path(run_dir) / "world_model"]
            if self.hparams.export_dir:
                targets.append(Path(self.hparams.export_dir))
            for target in targets:  # locked and swapped in whole: a concurrent reader or writer sees no half folder
                with FolderLock(target.parent, "world-model export"):
                    replace_folder(target, self.world_model.save_pretrained)
            print(f"[world model] exported (save_pretrained) to {', '.join(str(t) for t in targets)}", flush=True)
            self._report_quality()
        self.trainer.strategy.barrier("world_model_export_done")

    def _report_quality(self) -> None:
        """One line on whether the exported model predicts better than copying the frame: a time-capped run on a
        slow machine can end worse (pred/copy 3.6 after 301 steps in the quick preset on a half-speed machine),
        and every policy trained on it then fails without saying why."""
        ratio = self.trainer.callback_metrics.get("val/pred_over_copy")
        if ratio is None:
            return
        ratio = float(ratio)
        verdict = ("it predicts better than copying the current frame" if ratio < 1 else
                   "WORSE than copying the current frame: experts that read its frames will act on noise; train it "
                   "longer (--trainer.max_steps, --trainer.max_time)")
        print(f"[world model] after {self.global_step} steps, val/pred_over_copy {ratio:.2f}: {verdict}", flush=True)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self._latents = None  # rebuilt from the (restored) frozen VAE on first use
