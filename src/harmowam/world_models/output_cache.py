"""The frozen world model's outputs for every training frame, computed once and read back by index.

Stage 2 freezes the world model, so re-sampling it for every batch (five denoising
steps, then decoding) pays the same cost again each epoch: on 2 CPU cores it was
most of a 1.7 s optimiser step. The cache stores, per frame of the data folders and
per sample ``s < samples_per_frame`` (different noise, so the experts still see the
world model's spread):

- ``features.npy`` float16 ``[N, S, K, P, D]``: the implicit features, average-pooled
  to ``P`` tokens per predicted frame (the predictive expert pools to the same P;
  the reactive expert averages all tokens, which pooling to equal bins preserves);
- ``frames.npy`` uint8 ``[N, S, k, 3, H, W]``: the first k decoded predicted frames, only
  when an expert trains on predicted frames, and only as many as the experts read (3
  of 4 for the reactive expert's 12-action chunk: decoding is most of the build).

A cache folder is named by a fingerprint of the world model's weights and config,
each data folder's ``meta.json`` and file sizes, and the cache options: a changed
world model or dataset builds a new one, never reads a stale one. A cache built
with more than a run asks for (more samples per frame, frames as well, a multiple of
its feature tokens) serves that run too: the paradigms of a comparison, which read
different subsets of the same outputs, then share one build instead of making one
each (three builds of 5 to 6 minutes on 2 cores in the CPU comparison preset). A
served subset equals what its own build would hold, up to float16 rounding of pooled
features. It is written to a temporary folder and renamed when complete, so a killed
build leaves nothing that could be read as finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from harmowam.data.format import META_FILE, EpisodeStore
from harmowam.world_models.base import WorldModel, WorldModelOutput, frames_to_decode, to_uint8, to_unit_range

INFO_FILE = "cache.json"


@dataclass(frozen=True)
class CacheOptions:
    samples_per_frame: int = 2
    feature_tokens: int = 4  # tokens per predicted frame after pooling
    frames: bool | int = False  # also store decoded predicted frames: all (True) or the first n
    num_steps: int | None = None  # denoising steps (None: the world model's default; 1: single step)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples_per_frame < 1:
            raise ValueError(f"world_model_cache.samples_per_frame must be >= 1, got {self.samples_per_frame}")
        if self.feature_tokens < 1:
            raise ValueError(f"world_model_cache.feature_tokens must be >= 1, got {self.feature_tokens}")


def pool_tokens(features: torch.Tensor, tokens: int) -> torch.Tensor:
    """``[B, K, N, D]`` -> ``[B, K, tokens, D]`` by average pooling over the token axis."""
    b, k, n, d = features.shape
    if n == tokens:
        return features
    x = F.adaptive_avg_pool1d(features.reshape(b * k, n, d).transpose(1, 2), tokens).transpose(1, 2)
    return x.reshape(b, k, tokens, d)


def world_model_fingerprint(world_model: WorldModel) -> str:
    """sha256 over the world model's config and every tensor of its state dict."""
    h = hashlib.sha256(json.dumps(world_model.get_config(), sort_keys=True, default=str).encode())
    for key, value in sorted(world_model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
                 if value.numel() else b"")
    return h.hexdigest()


def data_fingerprint(stores: Iterable[EpisodeStore]) -> str:
    """sha256 over each folder's ``meta.json`` and the sizes of its array files."""
    h = hashlib.sha256()
    for store in stores:
        h.update((store.path / META_FILE).read_bytes())
        for f in sorted(store.path.glob("*.bin")):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()


def frame_instructions(stores: list[EpisodeStore]) -> list[str]:
    """The instruction of every frame, in the global frame order the data module uses."""
    out: list[str] = []
    for store in stores:
        per_frame = [""] * store.num_frames
        for ep in store.episodes:
            per_frame[ep.start:ep.stop] = [ep.instruction] * ep.length
        out.extend(per_frame)
    return out


def serves(built: dict, wanted: CacheOptions, world_model: str, data: str, num_future_frames: int) -> bool:
    """Whether a cache built with ``built`` (its ``cache.json``) holds everything ``wanted`` reads, exactly:
    the same world model and data (their fingerprints), denoising steps and seed; at least as many samples;
    frames if asked; and feature tokens that pool down to the wanted number over equal bins (so the result is
    the same mean)."""
    options, tokens = built.get("options", {}), built.get("tokens_per_frame")
    have = options.get("feature_tokens")
    stored = built.get("frames_stored", num_future_frames if options.get("frames") is True else 0)
    return (built.get("world_model") == world_model and built.get("data_fingerprint") == data
            and isinstance(have, int) and isinstance(tokens, int)
            and options.get("num_steps") == wanted.num_steps and options.get("seed") == wanted.seed
            and options.get("samples_per_frame", 0) >= wanted.samples_per_frame
            and stored >= frames_to_decode(wanted.frames, num_future_frames)
            and have % wanted.feature_tokens == 0 and tokens % have == 0)


class WorldModelOutputCache:
    """Read access to a built cache: ``lookup(frame_index, sample)`` -> :class:`WorldModelOutput`.

    ``options``: read it as a cache with these (a subset of what it was built with, see :func:`serves`)."""

    def __init__(self, path: Path, options: CacheOptions | None = None) -> None:
        self.path = path
        self.info = json.loads((path / INFO_FILE).read_text())
        self.features = np.load(path / "features.npy", mmap_mode="r")
        self.samples_per_frame = self.features.shape[1]
        self.feature_tokens = self.features.shape[3]
        frames = (path / "frames.npy").is_file()
        if options is not None:
            self.samples_per_frame, self.feature_tokens = options.samples_per_frame, options.feature_tokens
            frames = frames and options.frames
        self.frames = np.load(path / "frames.npy", mmap_mode="r") if frames else None

    def lookup(self, frame_index: torch.Tensor, sample: torch.Tensor, device: torch.device | str = "cpu"
               ) -> WorldModelOutput:
        idx, s = frame_index.cpu().numpy(), sample.cpu().numpy()
        if s.size and int(s.max()) >= self.samples_per_frame:
            raise IndexError(f"sample {int(s.max())} asked of a cache read with {self.samples_per_frame} per frame")
        feats = torch.from_numpy(np.asarray(self.features[idx, s], dtype=np.float32))
        feats = pool_tokens(feats, self.feature_tokens).to(device)
        frames = None
        if self.frames is not None:
            frames = to_unit_range(torch.from_numpy(np.asarray(self.frames[idx, s])).to(device))
        return WorldModelOutput(frames=frames, features=feats)

    @classmethod
    def build_or_load(cls, root: str | Path, world_model: WorldModel, stores: list[EpisodeStore],
                      options: CacheOptions, device: torch.device | str = "cpu", batch_size: int | None = None,
                      log: bool = True) -> "WorldModelOutputCache":
        """The cache for this world model, data and options: loaded if it (or one that serves it) exists,
        else built now, ``batch_size`` frames at a time (default: 32 on the CPU, where the denoiser took 12.4 ms a
        frame in batches of 16 and 15.9 in batches of 64, and 256 on an accelerator)."""
        if batch_size is None:
            batch_size = 32 if torch.device(device).type == "cpu" else 256
        wm_print, data_print = world_model_fingerprint(world_model), data_fingerprint(stores)
        key = hashlib.sha256("|".join([wm_print, data_print,
                                       json.dumps(asdict(options), sort_keys=True)]).encode()).hexdigest()[:24]
        path = Path(root) / key
        if (path / INFO_FILE).is_file():
            if log:
                print(f"[world-model cache] reading {path}", flush=True)
            return cls(path)
        for info_file in sorted(Path(root).glob(f"*/{INFO_FILE}")):
            built = json.loads(info_file.read_text())
            if serves(built, options, wm_print, data_print, world_model.num_future_frames):
                if log:
                    print(f"[world-model cache] reading {info_file.parent} (built with {built['options']}) as "
                          f"{asdict(options)}", flush=True)
                return cls(info_file.parent, options)
        tmp = Path(root) / f"{key}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _build(tmp, world_model, stores, options, device, batch_size, log)
            (tmp / INFO_FILE).write_text(json.dumps({"options": asdict(options),
                                                     "tokens_per_frame": world_model.tokens_per_frame,
                                                     "frames_stored": frames_to_decode(options.frames,
                                                                                       world_model.num_future_frames),
                                                     "world_model": wm_print, "data_fingerprint": data_print,
                                                     "data": [str(s.path) for s in stores]}, indent=1))
            try:
                tmp.rename(path)
            except OSError:  # another process finished the same cache first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls(path)


@torch.no_grad()
def _build(path: Path, world_model: WorldModel, stores: list[EpisodeStore], options: CacheOptions,
           device: torch.device | str, batch_size: int, log: bool) -> None:
    import time

    instructions = frame_instructions(stores)
    n, s = len(instructions), options.samples_per_frame
    k, d = world_model.num_future_frames, world_model.feature_dim
    size = world_model.image_size
    feats = np.lib.format.open_memmap(path / "features.npy", mode="w+", dtype=np.float16,
                                      shape=(n, s, k, options.feature_tokens, d))
    frames, decode = None, frames_to_decode(options.frames, k)
    if decode:
        frames = np.lib.format.open_memmap(path / "frames.npy", mode="w+", dtype=np.uint8,
                                           shape=(n, s, decode, 3, size, size))
    t0, start = time.perf_counter(), 0
    for store in stores:
        images = store.arrays["image"]
        for i in range(0, store.num_frames, batch_size):
            batch = torch.from_numpy(np.array(images[i:i + batch_size])).permute(0, 3, 1, 2).to(device)
            lo = start + i
            texts = instructions[lo:lo + len(batch)]
            for j in range(s):
                gen = torch.Generator(device=device).manual_seed(options.seed * 1_000_003 + j * 7919 + lo)
                out = world_model.predict(batch, texts, decode=decode, features=True, generator=gen,
                                          num_steps=options.num_steps)
                feats[lo:lo + len(batch), j] = pool_tokens(out.features.float(), options.feature_tokens).cpu().numpy()
                if frames is not None:
                    frames[lo:lo + len(batch), j] = to_uint8(out.frames).cpu().numpy()
        start += store.num_frames
    feats.flush()
    if frames is not None:
        frames.flush()
    if log:
        print(f"[world-model cache] {n} frames x {s} samples in {time.perf_counter() - t0:.0f} s -> {path.parent}",
              flush=True)
