"""Action diffusion with a diffusers scheduler: DDPM/DDIM noise prediction, or flow matching.

One timestep scale for the network, whatever the scheduler: it always sees
``timestep`` in [0, 1000) (DDPM/DDIM: ``t * 1000 / num_train_timesteps``; flow
matching: ``1000 * sigma``). Training and sampling both go through
:meth:`ActionNoiseSchedule.model_timestep`, so the two cannot drift apart (they
once did: flow matching trained at ``1000 * sigma`` and sampled at ``100 * sigma``).
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler

from harmowam.noise import Generators, randn

SCHEDULERS = ("ddim", "ddpm", "flow_matching")
PREDICTIONS = ("noise", "sample")


class ActionNoiseSchedule:
    """Training targets and the sampling loop for one scheduler kind.

    ``ddpm``/``ddim`` train on noise prediction (the paper's loss) with 100 training
    steps and sample with trailing timestep spacing (the last step starts from pure
    noise, as "Common Diffusion Noise Schedules and Sample Steps are Flawed" asks);
    ``flow_matching`` predicts ``noise - actions`` as diffusers' flow models do.

    ``prediction="sample"`` makes the network predict the clean chunk instead (DDPM's
    ``prediction_type="sample"``; for flow matching the velocity is derived from it).
    The loss is then a regression on actions at every noise level, which converges in
    far fewer steps than noise prediction at the budgets of a CPU run
    (docs/stage2_recipe.md).
    """

    def __init__(self, kind: str = "ddim", num_train_timesteps: int = 100, num_inference_steps: int = 10,
                 prediction: str = "noise") -> None:
        if kind not in SCHEDULERS:
            raise ValueError(f"unknown action scheduler '{kind}'; choose from {', '.join(SCHEDULERS)}")
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction '{prediction}'; choose from {', '.join(PREDICTIONS)}")
        if not 1 <= num_inference_steps <= num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {num_train_timesteps}], got {num_inference_steps}")
        self.kind, self.num_train_timesteps, self.num_inference_steps = kind, num_train_timesteps, num_inference_steps
        self.prediction = prediction
        if kind == "flow_matching":
            self.train_scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=num_train_timesteps)
        else:
            self.train_scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="squaredcos_cap_v2",
                                                 clip_sample=True, timestep_spacing="trailing",
                                                 prediction_type="epsilon" if prediction == "noise" else "sample")

    def model_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The network's timestep in [0, 1000) for a scheduler timestep (flow: ``sigma * num_train_timesteps``)."""
        return t.float() * (1000.0 / self.num_train_timesteps)

    def training_pair(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(noisy actions, network timesteps in [0, 1000), target) for a batch of clean actions."""
        b = actions.shape[0]
        noise = torch.randn_like(actions)
        if self.kind == "flow_matching":
            sigma = torch.rand(b, device=actions.device)
            s = sigma.view(-1, 1, 1)
            target = actions if self.prediction == "sample" else noise - actions
            return s * noise + (1 - s) * actions, self.model_timestep(sigma * self.num_train_timesteps), target
        t = torch.randint(0, self.num_train_timesteps, (b,), device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, t)
        return noisy, self.model_timestep(t), actions if self.prediction == "sample" else noise

    def sampler(self) -> DDIMScheduler | DDPMScheduler | FlowMatchEulerDiscreteScheduler:
        if self.kind == "flow_matching":
            return FlowMatchEulerDiscreteScheduler(num_train_timesteps=self.num_train_timesteps)
        if self.kind == "ddim":
            return DDIMScheduler.from_config(self.train_scheduler.config, set_alpha_to_one=True)
        return DDPMScheduler.from_config(self.train_scheduler.config)

    @torch.no_grad()
    def sample(self, shape: tuple[int, ...], model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               device: torch.device, generator: Generators = None) -> torch.Tensor:
        scheduler = self.sampler()
        scheduler.set_timesteps(self.num_inference_steps, device=device)
        x = randn(shape, generator, device)
        flow_from_sample = self.kind == "flow_matching" and self.prediction == "sample"
        for i, t in enumerate(scheduler.timesteps):
            out = model(x, self.model_timestep(t).expand(shape[0]).to(device))
            if flow_from_sample:  # velocity (noise - x0) from the predicted x0: x_t = s * noise + (1 - s) * x0
                out = (x - out) / scheduler.sigmas[i].to(device).clamp_min(1e-4)
            x = scheduler.step(out, t, x).prev_sample
        return x
