import pytest
import torch

import harmowam
from harmowam.world_models import LatentVideoWorldModel

TINY = dict(
    image_size=32, num_future_frames=2, frame_stride=2,
    vae={"block_out_channels": [8, 16], "norm_num_groups": 8},
    transformer={"num_attention_heads": 2, "attention_head_dim": 16, "ffn_dim": 64, "num_layers": 2, "freq_dim": 32},
    instruction_encoder={"name": "learned", "dim": 16},
    num_inference_steps=2,
)
INSTR = ["push the puck to the goal", "open the drawer"]


def tiny_model(**overrides) -> LatentVideoWorldModel:
    torch.manual_seed(0)
    return harmowam.create_world_model("latent_flow", **{**TINY, **overrides})


def test_output_shapes_and_features_without_decoding():
    wm = tiny_model().eval()
    image = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    out = wm.predict(image, INSTR)
    assert out.frames.shape == (2, 2, 3, 32, 32)
    assert out.frames.min() >= -1 and out.frames.max() <= 1
    assert out.features.shape == (2, 2, wm.tokens_per_frame, wm.feature_dim) == (2, 2, 64, 32)
    assert out.latents.shape == (2, 4, 2, 16, 16)
    decoder_calls = []
    handle = wm.vae.decoder.register_forward_hook(lambda *a: decoder_calls.append(1))
    out = wm.predict(image, INSTR, decode=False)
    handle.remove()
    assert out.frames is None and out.features is not None and not decoder_calls


def test_feature_block_is_configurable():
    wm = tiny_model(feature_block=0).eval()
    image = torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    f0 = wm.predict(image, INSTR[:1], decode=False, generator=g).features
    wm.feature_block = 1
    f1 = wm.predict(image, INSTR[:1], decode=False, generator=torch.Generator().manual_seed(0)).features
    assert not torch.allclose(f0, f1)
    with pytest.raises(ValueError, match="feature_block 5 out of range"):
        tiny_model(feature_block=5)


def test_flow_matching_loss_falls_on_a_fixed_batch():
    wm = tiny_model()
    torch.manual_seed(1)
    cond = torch.randn(4, 4, 1, 16, 16)
    future = cond.repeat(1, 1, 2, 1, 1) + 0.1 * torch.randn(4, 4, 2, 16, 16)
    instr = INSTR * 2
    opt = torch.optim.AdamW(wm.transformer.parameters(), lr=1e-2)
    losses = []
    for step in range(40):
        torch.manual_seed(0)  # the same noise and time draws each step: a fixed regression problem
        loss = wm.flow_matching_loss(cond, future, instr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_vae_loss_falls_on_a_fixed_batch():
    wm = tiny_model()
    images = torch.randint(0, 255, (8, 3, 32, 32), dtype=torch.uint8)
    images[:, :, :16] = 40  # some structure to learn
    opt = torch.optim.AdamW(wm.vae.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        loss, _ = wm.vae_loss(images)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_from_pretrained_round_trip_gives_identical_outputs(tmp_path):
    wm = tiny_model().eval()
    wm.calibrate_latents(torch.randn(10, 4, 16, 16) * 3 + 1)  # non-trivial latent statistics must survive
    wm.save_pretrained(tmp_path / "wm")
    assert (tmp_path / "wm" / "vae" / "config.json").is_file()
    assert (tmp_path / "wm" / "transformer" / "config.json").is_file()
    loaded = LatentVideoWorldModel.from_pretrained(tmp_path / "wm").eval()
    image = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    a = wm.predict(image, INSTR, generator=torch.Generator().manual_seed(3))
    b = loaded.predict(image, INSTR, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.frames, b.frames)
    torch.testing.assert_close(a.features, b.features)
    torch.testing.assert_close(loaded.latent_scale, wm.latent_scale)
    assert loaded.frame_stride == 2 and loaded.num_future_frames == 2


def test_unknown_instruction_names_the_vocabulary():
    wm = tiny_model()
    with pytest.raises(KeyError, match="not in the learned vocabulary"):
        wm.text(["fly to the moon"])


def test_from_pretrained_of_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="world_model.json"):
        LatentVideoWorldModel.from_pretrained(tmp_path)


def test_residual_decoding_keeps_a_static_scene_exact():
    from harmowam.world_models.base import to_unit_range

    wm = tiny_model().eval()
    image = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        cond = wm.encode(image).unsqueeze(2)
        static = cond.repeat(1, 1, 2, 1, 1)  # "the future looks like now"
        frames = wm.decode_future(static, cond, image)
        expected = to_unit_range(image)[:, None].expand_as(frames)
        torch.testing.assert_close(frames, expected, atol=1e-5, rtol=0)
        wm.residual_decode = False  # direct decoding pays the VAE's reconstruction error
        assert (wm.decode_future(static, cond, image) - expected).abs().mean() > 1e-3


def test_decoding_the_leading_frames_only_gives_the_same_frames():
    wm = tiny_model().eval()
    image = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    full = wm.predict(image, INSTR, generator=torch.Generator().manual_seed(3))
    first = wm.predict(image, INSTR, decode=1, generator=torch.Generator().manual_seed(3))
    assert first.frames.shape == (2, 1, 3, 32, 32)
    torch.testing.assert_close(first.frames, full.frames[:, :1])
    with pytest.raises(ValueError, match="decode=3"):
        wm.predict(image, INSTR, decode=3)


def test_a_large_decode_in_pieces_equals_one_frame_at_a_time():
    from harmowam.world_models.latent_flow import DECODE_CHUNK

    wm = tiny_model().eval()
    latents = torch.randn(DECODE_CHUNK + 5, 4, 16, 16)
    with torch.no_grad():
        together = wm.decode(latents)
        one_by_one = torch.cat([wm.decode(z[None]) for z in latents])
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=1e-4)
