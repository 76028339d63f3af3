"""Image augmentation for policy training: random shift (DrQ, Diffusion Policy) and colour jitter.

Both act per sample and identically on every frame of that sample (the current
frame and its future frames), so that inverse dynamics between frames still holds.
They run on the training batch only; validation and inference see clean frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(frames: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each sample of ``frames [B, T, C, H, W]`` by up to ``pad`` pixels (edge-replicated), same for all T."""
    if pad <= 0:
        return frames
    b, t, c, h, w = frames.shape
    x = frames.reshape(b, t * c, h, w)
    dtype = x.dtype
    padded = F.pad(x.float(), (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").tolist()
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device="cpu").tolist()
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    return out.to(dtype).reshape(b, t, c, h, w)


def color_jitter(frames: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample brightness, contrast, saturation and per-channel gain on uint8 ``frames [B, T, 3, H, W]``.

    ``strength`` s draws each factor from ``[1 - s, 1 + s]`` (channel gains from half that range).
    """
    if strength <= 0:
        return frames
    b = frames.shape[0]

    def factor(scale: float, *shape: int) -> torch.Tensor:
        u = torch.rand((b, *shape), generator=generator, device="cpu") * 2 - 1
        return (1 + scale * u).to(frames.device).view(b, 1, *shape, *([1] * (3 - len(shape))))

    x = frames.float() / 255.0
    x = x * factor(strength)  # brightness
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    x = (x - mean) * factor(strength) + mean  # contrast
    gray = (0.299 * x[:, :, 0:1] + 0.587 * x[:, :, 1:2] + 0.114 * x[:, :, 2:3])
    x = (x - gray) * factor(strength) + gray  # saturation
    x = x * factor(strength / 2, 3)  # colour balance
    return (x.clamp(0, 1) * 255).round().to(frames.dtype)
