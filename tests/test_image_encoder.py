import pytest
import torch
from safetensors.torch import save_file

from harmowam.experts import ImageTokenEncoder

TINY_VIT = {"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}


def test_tokens_shape_without_prefix_tokens():
    enc = ImageTokenEncoder(image_size=32, model_kwargs=TINY_VIT)
    tokens = enc(torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8))
    assert tokens.shape == (2, 16, 32) and enc.grid_size == 4 and enc.num_tokens == 16


def test_weights_load_from_a_local_file(tmp_path):
    torch.manual_seed(0)
    source = ImageTokenEncoder(image_size=32, model_kwargs=TINY_VIT)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in source.model.state_dict().items()}, path)
    torch.manual_seed(1)  # a different random init, overwritten by the file
    loaded = ImageTokenEncoder(image_size=32, model_kwargs=TINY_VIT, pretrained_file=str(path))
    x = torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8)
    torch.testing.assert_close(loaded(x), source(x))


def test_missing_weights_file_and_unknown_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageTokenEncoder(image_size=32, model_kwargs=TINY_VIT, pretrained_file=str(tmp_path / "none.pth"))
    with pytest.raises(KeyError, match="unknown timm model 'no_such_net'"):
        ImageTokenEncoder("no_such_net", image_size=32)
