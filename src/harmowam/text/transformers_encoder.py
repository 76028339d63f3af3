"""A pretrained text encoder (T5 or CLIP) from a local transformers folder, as the paper's T5.

An optional extra (``pip install 'harmowam[text]'``): the core install stays without
transformers. The folder is what ``save_pretrained`` writes for the model and its
tokenizer; nothing is fetched from a hub (``local_files_only``). Frozen by default, as
in the paper: each instruction is then encoded once and kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harmowam.text.instruction_encoder import InstructionEncoder

#: registered name -> the transformers class of its text tower
MODEL_CLASSES = {"t5": "T5EncoderModel", "clip": "CLIPTextModel"}


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise ImportError("a T5 or CLIP instruction encoder needs transformers: pip install 'harmowam[text]'") from exc
    return transformers


class TransformersTextEncoder(InstructionEncoder):
    """Instructions -> ``[B, num_tokens, hidden]``: the text tower's last hidden states, padded or cut to
    ``num_tokens`` (padding positions zeroed)."""

    def __init__(self, path: str, kind: str = "t5", num_tokens: int = 16, trainable: bool = False) -> None:
        super().__init__()
        if kind not in MODEL_CLASSES:
            raise ValueError(f"kind '{kind}' unknown; kinds are {', '.join(MODEL_CLASSES)}")
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"'{folder}' holds no transformers model (no config.json); save one there with "
                                    "save_pretrained, with its tokenizer")
        tf = _transformers()
        self.tokenizer = tf.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = getattr(tf, MODEL_CLASSES[kind]).from_pretrained(folder, local_files_only=True,
                                                                     use_safetensors=True)
        self.path, self.kind, self.trainable = str(folder), kind, trainable
        self.model.requires_grad_(trainable)
        self.dim, self.num_tokens = int(self.model.config.hidden_size), num_tokens
        self._cache: dict[str, torch.Tensor] = {}

    def train(self, mode: bool = True) -> "TransformersTextEncoder":
        return super().train(mode and self.trainable)

    def _encode(self, instructions: list[str]) -> torch.Tensor:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(instructions, padding="max_length", truncation=True, max_length=self.num_tokens,
                               return_tensors="pt").to(device)
        hidden = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        return hidden * batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)

    def forward(self, instructions: list[str]) -> torch.Tensor:
        if self.trainable:
            return self._encode(list(instructions))
        missing = sorted({s for s in instructions if s not in self._cache})
        if missing:
            with torch.no_grad():
                for s, tokens in zip(missing, self._encode(missing)):
                    self._cache[s] = tokens
        device = next(self.model.parameters()).device
        return torch.stack([self._cache[s].to(device) for s in instructions])

    def get_config(self) -> dict[str, Any]:
        return {"path": self.path, "num_tokens": self.num_tokens, "trainable": self.trainable}  # the name gives the kind


def t5(path: str, num_tokens: int = 16, trainable: bool = False) -> TransformersTextEncoder:
    """T5's encoder (the paper's instruction encoder) from a local folder."""
    return TransformersTextEncoder(path, "t5", num_tokens, trainable)


def clip(path: str, num_tokens: int = 16, trainable: bool = False) -> TransformersTextEncoder:
    """CLIP's text tower from a local folder."""
    return TransformersTextEncoder(path, "clip", num_tokens, trainable)
