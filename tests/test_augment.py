"""Training augmentation: one random shift and one colour jitter per sample, the same on every frame of it."""

import itertools

import torch
import torch.nn.functional as F

from harmowam.data.augment import color_jitter, random_shift


def _frames(b=6, t=3, size=16, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, t, 3, size, size), generator=g, dtype=torch.uint8)


def test_random_shift_moves_every_frame_of_a_sample_by_one_offset_within_the_pad():
    frames, pad = _frames(), 3
    out = random_shift(frames, pad, generator=torch.Generator().manual_seed(1))
    assert out.shape == frames.shape and out.dtype == torch.uint8
    b, t, c, h, w = frames.shape
    padded = F.pad(frames.reshape(b, t * c, h, w).float(), (pad,) * 4, mode="replicate").to(torch.uint8)
    offsets = []
    for i in range(b):
        found = [(dy, dx) for dy, dx in itertools.product(range(2 * pad + 1), repeat=2)
                 if torch.equal(padded[i, :, dy:dy + h, dx:dx + w], out[i].reshape(t * c, h, w))]
        assert found, f"sample {i} is not one translation of its frames within {pad} pixels"
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # samples draw their own offsets


def test_no_shift_and_no_jitter_leave_frames_unchanged():
    frames = _frames()
    assert torch.equal(random_shift(frames, 0), frames)
    assert torch.equal(color_jitter(frames, 0.0), frames)


def test_color_jitter_applies_one_transform_per_sample_to_all_its_frames():
    one = _frames(b=4, t=1)
    frames = one.expand(-1, 3, -1, -1, -1).contiguous()  # three identical frames per sample
    out = color_jitter(frames, 0.3, generator=torch.Generator().manual_seed(2))
    assert out.dtype == torch.uint8 and out.shape == frames.shape
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    assert not torch.equal(out, frames)
    same = one[:1].expand(4, 3, -1, -1, -1).contiguous()  # one image for every sample
    jittered = color_jitter(same, 0.3, generator=torch.Generator().manual_seed(2))
    assert len({jittered[i, 0].float().mean().item() for i in range(4)}) > 1  # samples draw their own transforms
