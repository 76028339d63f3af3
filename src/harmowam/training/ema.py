"""An exponential moving average of a module's trainable weights (as diffusion policies use).

The average is what a policy acts with: validation and inference swap it in, and a
saved checkpoint's ``state_dict`` holds it, while the training weights travel beside
it so that a resumed fit continues from them. The decay warms up as
``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so early averages are not
dominated by the random initialisation.
"""

from __future__ import annotations

import torch
from torch import nn


class ExponentialMovingAverage:
    def __init__(self, module: nn.Module, decay: float = 0.999, skip_prefixes: tuple[str, ...] = ()) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay, self.num_updates = decay, 0
        self.names = [n for n, p in module.named_parameters() if p.requires_grad and not n.startswith(skip_prefixes)]
        params = dict(module.named_parameters())
        self.shadow = {n: params[n].detach().clone() for n in self.names}
        self.backup: dict[str, torch.Tensor] | None = None  # training weights while the average is swapped in

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        d = self.current_decay()
        params = dict(module.named_parameters())
        for n in self.names:
            if self.shadow[n].device != params[n].device:
                self.shadow[n] = self.shadow[n].to(params[n].device)
        # one fused call over all tensors instead of a Python loop of small ones
        torch._foreach_lerp_([self.shadow[n] for n in self.names], [params[n].detach() for n in self.names], 1 - d)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        params = dict(module.named_parameters())
        for n in self.names:
            params[n].copy_(self.shadow[n])

    @torch.no_grad()
    def swap_in(self, module: nn.Module) -> None:
        """Put the averaged weights into ``module``, keeping its training weights until :meth:`swap_out`."""
        if self.backup is not None:
            return
        params = dict(module.named_parameters())
        self.backup = {n: params[n].detach().clone() for n in self.names}
        self.copy_to(module)

    @torch.no_grad()
    def swap_out(self, module: nn.Module) -> None:
        """Give ``module`` its training weights back after :meth:`swap_in`."""
        if self.backup is None:
            return
        params = dict(module.named_parameters())
        for n, v in self.backup.items():
            params[n].copy_(v)
        self.backup = None

    def training_weights(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The training weights (CPU copies), whether or not the average is swapped in."""
        params = dict(module.named_parameters())
        return {n: (self.backup or {}).get(n, params[n].detach()).cpu().clone() for n in self.names}

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates,
                "shadow": {n: t.detach().cpu() for n, t in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.num_updates = float(state["decay"]), int(state["num_updates"])
        missing = set(self.names) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:5]}")
        self.shadow = {n: state["shadow"][n].clone() for n in self.names}
