"""Action diffusion with a diffusers scheduler: DDPM/DDIM noise prediction, or flow matching."""

from __future__ import annotations

from typing import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler

SCHEDULERS = ("ddim", "ddpm", "flow_matching")


class ActionNoiseSchedule:
    """Training targets and the sampling loop for one scheduler kind.

    ``ddpm``/``ddim`` train on noise prediction (the paper's loss) with 100 training
    steps; ``flow_matching`` predicts ``noise - actions`` as diffusers' flow models do.
    """

    def __init__(self, kind: str = "ddim", num_train_timesteps: int = 100, num_inference_steps: int = 10) -> None:
        if kind not in SCHEDULERS:
            raise ValueError(f"unknown action scheduler '{kind}'; choose from {', '.join(SCHEDULERS)}")
        self.kind, self.num_train_timesteps, self.num_inference_steps = kind, num_train_timesteps, num_inference_steps
        if kind == "flow_matching":
            self.train_scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps)
        else:
            self.train_scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                                                 clip_sample=True, prediction_type="epsilon")

    def training_pair(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy actions, timesteps in [0, 1000), target) for a batch of clean actions."""
        b = actions.shape[0]
        noise = torch.randn_like(actions)
        if self.kind == "flow_matching":
            sigma = torch.rand(b, device=actions.device)
            s = sigma.view(-1, 1, 1)
            return s * noise + (1 - s) * actions, sigma * 1000, noise - actions
        t = torch.randint(0, self.num_train_timesteps, (b,), device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, t)
        return noisy, t.float() * (1000 / self.num_train_timesteps), noise

    @torch.no_grad()
    def sample(self, shape: tuple[int, ...], model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.kind == "flow_matching":
            scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=self.num_train_timesteps)
        elif self.kind == "ddim":
            scheduler = DDIMScheduler.from_config(self.train_scheduler.config)
        else:
            scheduler = DDPMScheduler.from_config(self.train_scheduler.config)
        scheduler.set_timesteps(self.num_inference_steps, device=device)
        x = torch.randn(shape, generator=generator, device=device)
        for t in scheduler.timesteps:
            tt = t.float() * (1000 / self.num_train_timesteps) if self.kind != "flow_matching" else t.float()
            out = model(x, tt.expand(shape[0]).to(device))
            x = scheduler.step(out, t, x).prev_sample
        return x
