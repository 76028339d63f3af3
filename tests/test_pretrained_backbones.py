"""Pretrained backbones from local files only: timm image encoders at another resolution, T5 and CLIP text
encoders from transformers folders, the world model's VAE as the shared image encoder. Tiny random models
are saved to disk and loaded back; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import CONFIGS, run_cli
from harmowam.experts import ImageTokenEncoder
from harmowam.registry import build_component

transformers = pytest.importorskip("transformers")
TINY = {"depth": 1, "embed_dim": 32, "num_heads": 2}
WORDS = ["<pad>", "<unk>", "</s>", "push", "the", "puck", "to", "goal", "open", "drawer", "press", "button"]


@pytest.mark.parametrize("name, prefix_tokens", [("vit_base_patch16_siglip_224", 0), ("vit_small_patch14_dinov2", 1)])
def test_paper_backbones_load_from_a_file_at_the_world_models_resolution(tmp_path, name, prefix_tokens):
    """SigLIP (224 px) and DINOv2 (518 px) weights into a 64 px encoder: position embeddings resampled by timm."""
    import timm

    source = timm.create_model(name, num_classes=0, **TINY)
    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, path)
    enc = ImageTokenEncoder(name, image_size=64, model_kwargs=TINY, pretrained_file=str(path))
    torch.testing.assert_close(enc.model.patch_embed.proj.weight, source.patch_embed.proj.weight)
    torch.testing.assert_close(enc.model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert enc.num_prefix_tokens == prefix_tokens and enc.num_tokens == 16 and enc.grid_size == 4
    assert enc(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)).shape == (2, 16, 32)


def _tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                         eos_token="</s>").save_pretrained(folder)


def tiny_text_model(folder: Path, kind: str) -> Path:
    torch.manual_seed(0)
    if kind == "t5":
        config = transformers.T5Config(vocab_size=len(WORDS), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                                       pad_token_id=0, eos_token_id=2)
        model = transformers.T5EncoderModel(config)
    else:
        config = transformers.CLIPTextConfig(vocab_size=len(WORDS), hidden_size=16, intermediate_size=32,
                                             num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                                             pad_token_id=0, bos_token_id=1, eos_token_id=2)
        model = transformers.CLIPTextModel(config)
    model.save_pretrained(folder, safe_serialization=True)
    _tokenizer(folder)
    return folder


@pytest.mark.parametrize("kind", ["t5", "clip"])
def test_text_encoder_from_a_local_folder(tmp_path, kind):
    folder = tiny_text_model(tmp_path / kind, kind)
    enc = build_component("instruction_encoder", {"name": kind, "path": str(folder), "num_tokens": 8})
    out = enc(["push the puck to the goal", "open the drawer", "push the puck to the goal"])
    assert out.shape == (3, 8, 16) and enc.dim == 16 and enc.num_tokens == 8
    torch.testing.assert_close(out[0], out[2])
    assert (out[1, 3:] == 0).all()  # "open the drawer" is 3 words: the padding positions are zero
    assert not any(p.requires_grad for p in enc.parameters())  # frozen, as in the paper
    again = build_component("instruction_encoder", {"name": kind, **enc.get_config()})
    torch.testing.assert_close(again(["open the drawer"]), out[1:2])


def test_text_encoder_without_a_model_folder_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no transformers model"):
        build_component("instruction_encoder", {"name": "t5", "path": str(tmp_path)})


def test_stage2_trains_with_a_timm_encoder_and_t5_from_local_files(tiny_world_model_run, tmp_path):
    """The tiny stage-2 config with a SigLIP-style image encoder from a weights file and T5 from a folder."""
    import timm

    work = tiny_world_model_run.parents[2]
    weights = tmp_path / "siglip.safetensors"
    vit = timm.create_model("vit_base_patch16_siglip_224", num_classes=0, **TINY)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, weights)
    t5 = tiny_text_model(tmp_path / "t5", "t5")
    res = run_cli(["lightning", "fit", "-c", str(CONFIGS / "tiny_policy.yaml"),
                   "--trainer.logger.init_args.name=pretrained_backbones",
                   f"--model.init_args.image_encoder={{model_name: vit_base_patch16_siglip_224, model_kwargs: "
                   f"{{depth: 1, embed_dim: 32, num_heads: 2}}, pretrained_file: {weights}}}",
                   f"--model.init_args.instruction_encoder={{name: t5, path: {t5}, num_tokens: 8}}"], cwd=work)
    assert res.returncode == 0, res.stderr[-3000:]
    assert list((work / "runs" / "pretrained_backbones").rglob("*.ckpt"))


def test_world_model_vae_as_the_shared_image_encoder(tiny_world_model_run):
    from harmowam.policy_module import PolicyModule

    wm = tiny_world_model_run.parents[2] / "checkpoints" / "world_model"
    for trainable in (False, True):
        policy = PolicyModule(world_model=str(wm), image_encoder={"name": "world_model_vae", "trainable": trainable},
                              experts={"predictive": {"name": "predictive", "width": 32, "depth": 1, "heads": 2}},
                              gate="always_predictive", action_horizon=4)
        enc = policy.image_encoder
        tokens = enc(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
        assert tokens.shape == (2, 16, policy.world_model.vae.config.block_out_channels[-1])  # 4x4 grid at 32 px
        assert all(p.requires_grad == trainable for p in enc.parameters())
        # a copy: fine-tuning it leaves the frozen world model's VAE alone
        assert enc.conv_in.weight.data_ptr() != policy.world_model.vae.encoder.conv_in.weight.data_ptr()
    with pytest.raises(ValueError, match="image_encoder 'world_model_vae' reads the world model's VAE"):
        PolicyModule(world_model=None, image_encoder={"name": "world_model_vae"},
                     experts={"predictive": "behavior_cloning"}, gate="always_predictive")
