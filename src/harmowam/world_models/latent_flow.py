"""The default backbone: a per-frame VAE and a Wan video transformer trained by flow matching.

Time convention. The paper writes ``x_xi = (1 - xi) x0 + xi x1`` with ``x0`` noise,
``x1`` the clean latent and target velocity ``x1 - x0``. Diffusers (and Wan's
weights) use ``sigma = 1 - xi``: the network sees ``timestep = 1000 * sigma`` and
predicts ``noise - data = -(x1 - x0)``. We keep the diffusers convention so that
real Wan2.2 weights load unchanged; the loss is the paper's up to the sign of the
prediction, and sampling uses diffusers' ``FlowMatchEulerDiscreteScheduler``.

Image-to-video. The current frame's latent is the first latent frame and stays
clean: its tokens get timestep 0 (Wan2.2-TI2V's per-token timesteps) and it is
excluded from the loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
from safetensors.torch import load_file, save_file

from harmowam.noise import Generators, randn
from harmowam.registry import build_component
from harmowam.world_models.base import WorldModel, WorldModelOutput, frames_to_decode, to_unit_range

DEFAULT_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [8, 32, 64],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
}
DEFAULT_TRANSFORMER: dict[str, Any] = {
    "patch_size": [1, 2, 2],
    "num_attention_heads": 4,
    "attention_head_dim": 32,
    "ffn_dim": 512,
    "num_layers": 4,
    "freq_dim": 64,
    "rope_max_seq_len": 256,
}
#: frames per VAE decoder call: on 2 CPU cores a frame took 3.8 ms in calls of 32 and 7.9 ms in calls of 320
#: (the activations of a large call no longer fit the caches), so large batches are decoded in pieces
DECODE_CHUNK = 32
CONFIG_FILE = "world_model.json"
EXTRAS_FILE = "extras.safetensors"


class LatentVideoWorldModel(WorldModel):
    """VAE (frozen after stage 0) + Wan transformer denoiser + instruction encoder.

    ``vae_pretrained`` / ``transformer_pretrained`` name local diffusers folders
    (``from_pretrained``): the path by which a GPU user loads real Wan2.2 weights.
    Given, they replace the small default configurations.
    """

    def __init__(
        self,
        image_size: int = 64,
        num_future_frames: int = 4,
        frame_stride: int = 4,
        vae: dict[str, Any] | None = None,
        transformer: dict[str, Any] | None = None,
        instruction_encoder: dict[str, Any] | str = "learned",
        feature_block: int = -1,
        num_inference_steps: int = 5,
        scheduler_shift: float = 1.0,
        residual_decode: bool = True,
        vae_pretrained: str | None = None,
        transformer_pretrained: str | None = None,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.num_future_frames = num_future_frames
        self.frame_stride = frame_stride  # env steps between predicted frames, as in the training data
        self.num_inference_steps = num_inference_steps
        self.scheduler_shift = scheduler_shift
        self.residual_decode = residual_decode
        self.text = build_component("instruction_encoder", instruction_encoder)
        if vae_pretrained:
            self.vae = AutoencoderKL.from_pretrained(vae_pretrained, use_safetensors=True)
        else:
            cfg = {**DEFAULT_VAE, "sample_size": image_size, **(vae or {})}
            depth = len(cfg["block_out_channels"])  # one encoder/decoder block per width unless given
            cfg.setdefault("down_block_types", ["DownEncoderBlock2D"] * depth)
            cfg.setdefault("up_block_types", ["UpDecoderBlock2D"] * depth)
            self.vae = AutoencoderKL(**cfg)
        c = self.vae.config.latent_channels
        if transformer_pretrained:
            self.transformer = WanTransformer3DModel.from_pretrained(transformer_pretrained, use_safetensors=True)
        else:
            cfg = {**DEFAULT_TRANSFORMER, "in_channels": c, "out_channels": c, "text_dim": self.text.dim, **(transformer or {})}
            self.transformer = WanTransformer3DModel(**cfg)
        if self.transformer.config.in_channels != c:
            raise ValueError(f"transformer in_channels {self.transformer.config.in_channels} != VAE latent channels {c}")
        if self.transformer.config.text_dim != self.text.dim:
            raise ValueError(f"transformer text_dim {self.transformer.config.text_dim} != instruction encoder dim {self.text.dim}")
        n_blocks = len(self.transformer.blocks)
        if not -n_blocks <= feature_block < n_blocks:
            raise ValueError(f"feature_block {feature_block} out of range for a denoiser of {n_blocks} blocks")
        self.feature_block = feature_block % n_blocks
        down = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.latent_size = image_size // down
        _, ph, pw = self.transformer.config.patch_size
        self.tokens_per_frame = (self.latent_size // ph) * (self.latent_size // pw)
        self.feature_dim = self.transformer.config.num_attention_heads * self.transformer.config.attention_head_dim
        # Per-channel latent statistics, fitted once the VAE is frozen (calibrate_latents).
        self.register_buffer("latent_shift", torch.zeros(c))
        self.register_buffer("latent_scale", torch.ones(c))
        self._init_args = {
            "image_size": image_size, "num_future_frames": num_future_frames, "frame_stride": frame_stride,
            "feature_block": feature_block,
            "num_inference_steps": num_inference_steps, "scheduler_shift": scheduler_shift,
            "residual_decode": residual_decode,
            "instruction_encoder": instruction_encoder if isinstance(instruction_encoder, str) else dict(instruction_encoder),
        }

    # -- latents -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[..., 3, H, W]`` -> normalised latents ``[..., C, h, w]`` (posterior mean)."""
        lead = images.shape[:-3]
        return self.normalize_latents(self.encode_raw(images.flatten(0, -4))).unflatten(0, lead)

    def normalize_latents(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw VAE latents ``[N, C, h, w]`` -> the normalised latents the denoiser works in."""
        shift, scale = self.latent_shift.to(raw.device), self.latent_scale.to(raw.device)
        return (raw - shift[:, None, None]) / scale[:, None, None]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents ``[..., C, h, w]`` -> frames in [-1, 1]."""
        lead = latents.shape[:-3]
        z = latents.flatten(0, -4) * self.latent_scale[:, None, None] + self.latent_shift[:, None, None]
        frames = torch.cat([self.vae.decode(part).sample for part in z.split(DECODE_CHUNK)])
        return frames.clamp(-1, 1).unflatten(0, lead)

    @torch.no_grad()
    def calibrate_latents(self, raw_latents: torch.Tensor) -> None:
        """Fit per-channel shift and scale from raw VAE latents ``[N, C, h, w]`` so that latents are ~N(0, 1)."""
        self.latent_shift.copy_(raw_latents.mean(dim=(0, 2, 3)))
        self.latent_scale.copy_(raw_latents.std(dim=(0, 2, 3)).clamp_min(1e-4))

    @torch.no_grad()
    def encode_raw(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 frames ``[N, 3, H, W]`` -> raw VAE latents (posterior mean), before normalisation."""
        return self.vae.encode(to_unit_range(images)).latent_dist.mode()

    def vae_loss(self, images: torch.Tensor, kl_weight: float = 1e-6) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Stage 0: reconstruction (L1 + MSE) and a small KL term on uint8 frames ``[B, 3, H, W]``."""
        x = to_unit_range(images)
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.sample()).sample
        l1 = F.l1_loss(recon, x)
        mse = F.mse_loss(recon, x)
        kl = posterior.kl().mean() / x[0].numel()
        loss = l1 + mse + kl_weight * kl
        return loss, {"vae_l1": l1.detach(), "vae_mse": mse.detach(), "vae_kl": kl.detach()}

    # -- denoiser ----------------------------------------------------------------------------
    def _timesteps(self, sigma: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Per-token timesteps ``[B, seq]``: 0 for the clean first frame, ``1000 sigma`` after."""
        tpf = self.tokens_per_frame
        t = (sigma * 1000).view(-1, 1).expand(-1, (num_frames - 1) * tpf)
        return torch.cat([torch.zeros_like(t[:, :tpf]), t], dim=1)

    def denoise(self, cond: torch.Tensor, noisy: torch.Tensor, sigma: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Predicted ``noise - data`` for the future latents. cond ``[B, C, 1, h, w]``, noisy ``[B, C, K, h, w]``."""
        x = torch.cat([cond, noisy], dim=2)
        out = self.transformer(x, self._timesteps(sigma, x.shape[2]), text, return_dict=False)[0]
        return out[:, :, 1:]

    def flow_matching_loss(self, cond: torch.Tensor, future: torch.Tensor, instructions: list[str],
                           future_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Stage 1: conditional flow matching on latents. cond ``[B, C, 1, h, w]``, future ``[B, C, K, h, w]``."""
        noise = torch.randn_like(future)
        sigma = torch.rand(future.shape[0], device=future.device)
        s = sigma.view(-1, 1, 1, 1, 1)
        noisy = s * noise + (1 - s) * future
        pred = self.denoise(cond, noisy, sigma, self.text(instructions))
        err = (pred.float() - (noise - future)).pow(2).mean(dim=(1, 3, 4))  # [B, K]
        if future_mask is None:
            return err.mean()
        m = future_mask.to(err.dtype)
        return (err * m).sum() / m.sum().clamp_min(1.0)

    @torch.no_grad()
    def sample_latents(self, cond: torch.Tensor, instructions: list[str], num_steps: int | None = None,
                       features: bool = True, generator: Generators = None
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Euler sampling of the future latents; also returns the feature block's tokens at the last step."""
        b, c, _, h, w = cond.shape
        k = self.num_future_frames
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=self.scheduler_shift)
        scheduler.set_timesteps(num_steps or self.num_inference_steps, device=cond.device)
        x = randn((b, c, k, h, w), generator, cond.device, cond.dtype)
        text = self.text(instructions)
        captured: dict[str, torch.Tensor] = {}
        hook = None
        if features:
            hook = self.transformer.blocks[self.feature_block].register_forward_hook(
                lambda _m, _i, out: captured.__setitem__("h", out)
            )
        try:
            for t in scheduler.timesteps:
                sigma = (t / 1000).expand(b)
                v = self.denoise(cond, x, sigma, text)
                x = scheduler.step(v, t, x, return_dict=False)[0]
        finally:
            if hook is not None:
                hook.remove()
        feats = None
        if features:
            h = captured["h"].unflatten(1, (k + 1, self.tokens_per_frame))  # [B, 1+K, N, D]
            feats = h[:, 1:]
        return x, feats

    @torch.no_grad()
    def predict(self, image: torch.Tensor, instructions: list[str], decode: bool | int = True, features: bool = True,
                generator: Generators = None, num_steps: int | None = None) -> WorldModelOutput:
        n = frames_to_decode(decode, self.num_future_frames)
        cond = self.encode(image).unsqueeze(2)  # [B, C, 1, h, w]
        latents, feats = self.sample_latents(cond, instructions, num_steps, features, generator)
        frames = self.decode_future(latents[:, :, :n], cond, image) if n else None
        return WorldModelOutput(frames=frames, features=feats, latents=latents)

    def decode_future(self, latents: torch.Tensor, cond: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Predicted frames ``[B, K, 3, H, W]`` from future latents ``[B, C, K, h, w]``.

        With ``residual_decode`` the predicted change is decoded, ``image + D(z_future) - D(z_current)``:
        the VAE's reconstruction error on what does not move cancels. Measured on the default data
        (benchmarks/world_model_prediction.py): VAE floor 0.025 -> 0.017, prediction 0.042 -> 0.032 MSE.
        """
        frames = self.decode(latents.transpose(1, 2))
        if not self.residual_decode:
            return frames
        base = self.decode(cond.transpose(1, 2))  # [B, 1, 3, H, W]
        return (to_unit_range(image)[:, None] + frames - base).clamp(-1, 1)

    def get_config(self) -> dict[str, Any]:
        """A registry spec that rebuilds this architecture (weights not included)."""
        def plain(config: Any) -> dict[str, Any]:
            return {k: v for k, v in dict(config).items() if not k.startswith("_")}

        encoder = self._init_args["instruction_encoder"]
        name = encoder if isinstance(encoder, str) else encoder["name"]
        return {"name": "latent_flow", **self._init_args, "instruction_encoder": {"name": name, **self.text.get_config()},
                "vae": plain(self.vae.config), "transformer": plain(self.transformer.config)}

    # -- persistence -------------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """Diffusers folders ``vae/`` and ``transformer/``, plus the encoder and latent statistics."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.vae.save_pretrained(path / "vae")
        self.transformer.save_pretrained(path / "transformer")
        extras = {k: v.contiguous() for k, v in self.state_dict().items()
                  if not k.startswith(("vae.", "transformer."))}
        save_file(extras, path / EXTRAS_FILE)
        config = {k: v for k, v in self.get_config().items() if k not in ("name", "vae", "transformer")}
        (path / CONFIG_FILE).write_text(json.dumps({"class": "latent_flow", **config}, indent=1))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "LatentVideoWorldModel":
        path = Path(path)
        config_file = path / CONFIG_FILE
        if not config_file.is_file():
            raise FileNotFoundError(f"{config_file}: not a saved harmowam world model (no {CONFIG_FILE})")
        config = json.loads(config_file.read_text())
        config.pop("class", None)
        model = cls(**config, vae_pretrained=str(path / "vae"), transformer_pretrained=str(path / "transformer"))
        missing, unexpected = model.load_state_dict(load_file(path / EXTRAS_FILE), strict=False)
        missing = [k for k in missing if not k.startswith(("vae.", "transformer."))]
        if missing or unexpected:
            raise ValueError(f"{path / EXTRAS_FILE}: missing {missing}, unexpected {unexpected}")
        return model
