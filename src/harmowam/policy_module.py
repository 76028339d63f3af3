"""Stage 2: the world model frozen, action experts and a gate trained together.

    L = L_pred + lambda_react * L_react + lambda_gate * L_gate

``world_model`` is a stage-1 checkpoint or ``save_pretrained`` folder; a saved policy
checkpoint carries the world model's weights and architecture, so it loads anywhere.

A paradigm is a choice of components: Joint Modeling is ``experts: {predictive}``
with ``gate: always_predictive``; Imagine-then-Execute is ``experts: {reactive}``
with ``gate: always_reactive``; HarmoWAM is both experts with ``process_adaptive``.
Experts are keyed by the role they fill, ``predictive`` or ``reactive``; any
registered expert (a third-party one too) can fill a role.

Inference follows LeRobot's policy contract: ``predict_action_chunk``,
``select_action`` with an action queue, and ``reset``. The gate runs first and
only the routed expert runs, with only the world-model outputs it needs. The gate is
read at every control step: when the routed expert changes, the queued actions are
dropped and the new expert plans.

Training recipe (the one image diffusion policies need): the frozen world model's
outputs come from a cache computed once per world model and data folder
(``world_model_cache``); an exponential moving average of the weights is what
validation, checkpoints and inference use (``ema_decay``); AdamW without weight decay
on norms, biases and embeddings; linear warm-up then cosine decay; random-shift image
augmentation (``image_shift`` pixels; off by default: 4 cost HarmoWAM 0.09 out of domain,
docs/stage2_recipe.md) and colour jitter (``color_jitter``; 0 turns it off), in training
only. Clip gradients with the trainer's ``gradient_clip_val``.
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torchmetrics
from torch import nn

from harmowam.data.augment import color_jitter, random_shift
from harmowam.data.normalization import Normalizer
from harmowam.data.shapes import data_shapes
from harmowam.experts.base import FEATURES, FRAMES, ExpertContext, PolicyShapes
from harmowam.experts.image_encoder import ImageTokenEncoder
from harmowam.experts.vae_image_encoder import VaeImageEncoder
from harmowam.gates.base import PREDICTIVE, REACTIVE
from harmowam.registry import REGISTRY, build_component, check_component, component_name
from harmowam.training import ExponentialMovingAverage, decay_and_no_decay, warmup_cosine
from harmowam.training.rng_state import ResumesRandomState
from harmowam.world_models.base import WorldModelOutput, to_uint8, to_unit_range
from harmowam.world_models.loading import load_world_model
from harmowam.world_models.output_cache import CacheOptions, WorldModelOutputCache

# The frozen world model is in eval mode on purpose (its dropout and norms must not change during stage 2);
# Lightning warns about every such module at the start of fit ("Found 289 module(s) in eval mode").
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")

DEFAULT_CACHE_DIR = "cache/world_model_outputs"

ROLES = (PREDICTIVE, REACTIVE)


class PolicyModule(ResumesRandomState, L.LightningModule):
    def __init__(
        self,
        world_model: str | dict[str, Any] | None = None,
        experts: dict[str, dict[str, Any] | str] | None = None,
        gate: dict[str, Any] | str = "process_adaptive",
        image_encoder: dict[str, Any] | None = None,
        instruction_encoder: dict[str, Any] | str = "learned",
        action_dim: int | None = None,
        state_dim: int | None = None,
        action_horizon: int = 12,
        image_size: int | None = None,
        lambda_react: float = 0.1,
        lambda_gate: float = 0.05,
        lr: float = 3e-4,
        weight_decay: float = 0.01,
        warmup_steps: int = 50,
        lr_schedule: str = "cosine",
        ema_decay: float | None = 0.995,
        image_shift: int = 0,
        color_jitter: float = 0.2,
        world_model_cache: dict[str, Any] | bool = True,
        world_model_steps: int | None = 1,
        n_action_steps: int = 8,
        gate_every_step: bool = True,
        val_sample_batches: int | None = None,
    ) -> None:
        """``world_model_cache``: True (defaults), False (sample the world model for every batch) or options
        ``{dir, samples_per_frame, feature_tokens}``; ``action_dim``, ``state_dim``: None takes them from the
        data (the ``lightning`` command reads its ``meta.json``; built in Python, Meta-World's 4 and 4); ``world_model_steps``: denoising steps for the features
        and frames in training and inference (None: the world model's own; 1: a single step);
        ``val_sample_batches``: validation batches on which each expert also samples chunks through its
        inference path for ``val/*_action_mse`` (None: all of them)."""
        super().__init__()
        self.save_hyperparameters()
        experts = experts if experts is not None else {PREDICTIVE: "predictive", REACTIVE: "reactive"}
        unknown_roles = set(experts) - set(ROLES)
        if unknown_roles:
            raise ValueError(f"expert roles {sorted(unknown_roles)} unknown; roles are {', '.join(ROLES)}")
        for role, spec in experts.items():  # a misspelt name or option is reported before the world model loads
            check_component("expert", spec)
        check_component("gate", gate)
        if isinstance(world_model, dict):  # an architecture spec: weights come from this module's checkpoint
            self.world_model = build_component("world_model", world_model)
        else:
            self.world_model = load_world_model(world_model) if world_model else None
        if self.world_model is not None:
            self.world_model.requires_grad_(False).eval()
        wm = self.world_model
        self.text = build_component("instruction_encoder", instruction_encoder)
        if wm is not None and image_size is not None and image_size != wm.image_size:
            raise ValueError(f"image_size={image_size} but the world model works at {wm.image_size}")
        image_size = wm.image_size if wm is not None else (image_size or PolicyShapes.image_size)
        self.image_encoder = self._build_image_encoder(dict(image_encoder or {}), image_size)
        self.shapes = PolicyShapes(
            action_dim=action_dim or 4, action_horizon=action_horizon, state_dim=state_dim or 4, image_size=image_size,
            instruction_dim=self.text.dim, image_token_dim=self.image_encoder.dim,
            wm_feature_dim=getattr(wm, "feature_dim", 0), wm_tokens_per_frame=getattr(wm, "tokens_per_frame", 0),
            wm_num_frames=getattr(wm, "num_future_frames", 0), wm_frame_stride=getattr(wm, "frame_stride", 4),
        )
        self.experts = nn.ModuleDict()
        for role, spec in experts.items():
            self.experts[role] = build_component("expert", spec, shapes=self.shapes)
        self.gate = build_component("gate", gate, shapes=self.shapes)
        missing = [r for r in self.gate.roles if r not in self.experts]
        if missing:
            raise ValueError(f"gate '{component_name(gate)}' routes to {missing}, but the config gives experts only for "
                             f"{sorted(self.experts)}")
        if wm is None and any(e.needs for e in self.experts.values()):
            raise ValueError("an expert needs the world model's outputs: set 'world_model' to a stage-1 checkpoint")
        if lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got '{lr_schedule}'")
        if isinstance(world_model_cache, dict):
            unknown = set(world_model_cache) - {"dir", "samples_per_frame", "feature_tokens", "seed"}
            if unknown:
                raise ValueError(f"world_model_cache: unknown keys {sorted(unknown)}; keys are dir, samples_per_frame, "
                                 "feature_tokens, seed")
        self.normalizer: Normalizer | None = None
        self.data_info: dict[str, Any] = {}  # the training data's camera and image size, from its meta.json
        self._cache: WorldModelOutputCache | None = None
        self._ema: ExponentialMovingAverage | None = None
        self._ema_restore: dict[str, Any] | None = None  # EMA state from a resumed checkpoint
        self._val = nn.ModuleDict({f"{r}_action_mse": torchmetrics.MeanSquaredError() for r in self.experts})
        self._val["policy_action_mse"] = torchmetrics.MeanSquaredError()
        self._val["gate_accuracy"] = torchmetrics.classification.BinaryAccuracy()
        self._val["gate_f1"] = torchmetrics.classification.BinaryF1Score()
        self.reset()

    # -- set-up from the data ----------------------------------------------------------------
    def _build_image_encoder(self, spec: dict[str, Any], image_size: int) -> nn.Module:
        """The shared image encoder: a timm backbone (``{model_name, model_kwargs, pretrained_file}``), or
        ``{name: world_model_vae, trainable}``: the world model's VAE encoder, pretrained on the broad video."""
        name = spec.pop("name", "timm")
        if name == "world_model_vae":
            if self.world_model is None or not hasattr(self.world_model, "vae"):
                raise ValueError("image_encoder 'world_model_vae' reads the world model's VAE: set 'world_model' to a "
                                 "stage-1 checkpoint with a VAE")
            return VaeImageEncoder(self.world_model.vae, image_size, **spec)
        if name != "timm":
            raise ValueError(f"image_encoder name '{name}' unknown; names are timm (the default), world_model_vae")
        return ImageTokenEncoder(image_size=image_size, **spec)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return
        dm.setup(stage)
        spec = dm.spec
        data = data_shapes(dm.stores)
        ours = (self.shapes.image_size, self.shapes.state_dim, self.shapes.action_dim)
        if (data.image_size, data.state_dim, data.action_dim) != ours:
            whose = " (its world model's)" if self.world_model is not None else ""
            raise ValueError(f"{dm.stores[0].path} holds {data.image_size} px frames, {data.state_dim}-D state and "
                             f"{data.action_dim}-D actions, but the model takes {ours[0]} px{whose}, "
                             f"{ours[1]}-D and {ours[2]}-D: leave model.state_dim and model.action_dim unset to take "
                             "them from the data, and train the world model on frames of this size")
        if spec.num_history != 1:
            raise ValueError(f"data.num_history={spec.num_history}, but the experts and gate read one observation: "
                             "set data.num_history: 1")
        if spec.action_horizon != self.hparams.action_horizon:
            raise ValueError(f"data.action_horizon={spec.action_horizon} but model.action_horizon="
                             f"{self.hparams.action_horizon}; they must match")
        if self.world_model is not None and (spec.num_future_frames, spec.future_stride) != (
                self.shapes.wm_num_frames, self.shapes.wm_frame_stride):
            raise ValueError(f"data gives {spec.num_future_frames} future frames at stride {spec.future_stride}, the "
                             f"world model predicts {self.shapes.wm_num_frames} at stride {self.shapes.wm_frame_stride}")
        if self.gate.learned and dm.label_strategy is None:
            raise ValueError(f"gate '{type(self.gate).__name__}' learns from phase labels: set data.label_strategy "
                             f"(one of {', '.join(REGISTRY.names('label_strategy'))})")
        if self.normalizer is None:
            self.normalizer = Normalizer(dm.stores[0].stats, dm.normalization)
        generation = dm.stores[0].meta.get("generation", {})
        self.data_info = {k: generation[k] for k in ("camera", "image_size") if k in generation}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        # Self-contained: reloading rebuilds the world model from its spec, not from the stage-1 path.
        if self.world_model is not None:
            checkpoint["hyper_parameters"]["world_model"] = self.world_model.get_config()
        checkpoint["data_info"] = dict(self.data_info)  # how the training frames were rendered: evaluation matches it
        n = self.normalizer
        checkpoint["normalizer"] = {"modes": n.modes, "buffers": {k: v.cpu() for k, v in n.state_dict().items()}}
        if self._ema is not None:
            # The state dict holds the averaged weights (what inference loads); the training weights travel beside.
            training = self._ema.training_weights(self)
            for k in self._ema.names:
                checkpoint["state_dict"][k] = self._ema.shadow[k].detach().cpu().clone()
            checkpoint["ema"] = {"decay": self._ema.decay, "num_updates": self._ema.num_updates,
                                 "training_weights": training}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        ema = checkpoint.get("ema")
        if ema is not None and self._trainer is not None and self._trainer.state.fn == "fit":
            # resuming a fit: continue from the training weights, keep the average as the EMA's state
            sd = checkpoint["state_dict"]
            self._ema_restore = {"decay": ema["decay"], "num_updates": ema["num_updates"],
                                 "shadow": {k: sd[k].clone() for k in ema["training_weights"]}}
            sd.update(ema["training_weights"])
        self.data_info = dict(checkpoint.get("data_info", {}))
        saved = checkpoint.get("normalizer")
        if saved is not None:
            stats: dict[str, dict[str, Any]] = {}
            for key, mode in saved["modes"].items():
                if mode == "identity":
                    continue
                off, scale = saved["buffers"][f"{key}_offset"], saved["buffers"][f"{key}_scale"]
                # rebuild as mean/std or min/max statistics that give the same offset and scale
                stats[key] = {"mean": off, "std": scale, "min": off - scale, "max": off + scale}
            self.normalizer = Normalizer(stats, saved["modes"])

    # -- context ------------------------------------------------------------------------------
    def _needs(self, training: bool) -> set[str]:
        """World-model outputs the experts read; in training, real future frames replace predicted ones."""
        needs: set[str] = set()
        for expert in self.experts.values():
            needs |= set(expert.needs) - ({FRAMES} if training and expert.trains_on_real_frames else set())
        return needs

    def _frames_to_decode(self, training: bool) -> int:
        """Leading predicted frames the experts read (0: none): the world model decodes no more than that."""
        k = self.world_model.num_future_frames if self.world_model is not None else 0
        reads = [min(e.frames_read or k, k) for e in self.experts.values()
                 if FRAMES in e.needs and not (training and e.trains_on_real_frames)]
        return max(reads, default=0)

    def _base_context(self, image: torch.Tensor, state: torch.Tensor, instructions: list[str]) -> ExpertContext:
        return ExpertContext(image=image, state=state, instructions=list(instructions),
                             instruction_tokens=self.text(list(instructions)), image_tokens=self.image_encoder(image))

    def _imagine(self, ctx: ExpertContext, needs: set[str]) -> WorldModelOutput | None:
        if not needs or self.world_model is None:
            return None
        decode = self._frames_to_decode(training=False) if FRAMES in needs else 0
        return self.world_model.predict(ctx.image, ctx.instructions, decode=decode, features=FEATURES in needs,
                                        num_steps=self.hparams.world_model_steps)

    def output_cache(self) -> WorldModelOutputCache | None:
        """The world model's outputs for every frame of the training data (built on first use), or None."""
        opts = self.hparams.world_model_cache
        needs = self._needs(training=True)
        if opts is False or self.world_model is None or not needs or self._trainer is None:
            return None
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not getattr(dm, "stores", None):
            return None
        if self._cache is None:
            opts = {} if opts is True else dict(opts)
            tokens = [getattr(e, "feature_tokens_per_frame", self.shapes.wm_tokens_per_frame)
                      for e in self.experts.values() if FEATURES in e.needs]
            options = CacheOptions(samples_per_frame=opts.get("samples_per_frame", 2),
                                   feature_tokens=opts.get("feature_tokens", max(tokens, default=1)),
                                   frames=self._frames_to_decode(training=True), num_steps=self.hparams.world_model_steps,
                                   seed=opts.get("seed", 0))
            self._cache = WorldModelOutputCache.build_or_load(opts.get("dir", DEFAULT_CACHE_DIR), self.world_model,
                                                              dm.stores, options, self.device)
        return self._cache

    def _train_context(self, batch: dict[str, Any], augment: bool = False) -> ExpertContext:
        """Context for the losses: cached (or freshly sampled) world-model outputs, real future frames, and,
        with ``augment``, the same random shift and colour jitter on every frame of a sample."""
        image, future, instructions = batch["image"][:, -1], batch["future_image"], list(batch["instruction"])
        b = len(image)
        needs = self._needs(training=True)
        wm: WorldModelOutput | None = None
        cache = self.output_cache()
        if cache is not None:
            sample = (torch.randint(cache.samples_per_frame, (b,)) if self.training
                      else torch.zeros(b, dtype=torch.long))
            wm = cache.lookup(batch["frame_index"], sample, self.device)
        elif needs and self.world_model is not None:
            wm = self.world_model.predict(image, instructions, decode=self._frames_to_decode(training=True),
                                          features=FEATURES in needs,
                                          num_steps=self.hparams.world_model_steps)
        if augment and (self.hparams.image_shift > 0 or self.hparams.color_jitter > 0):
            # one shift and jitter per sample over every frame an expert reads (real future frames only if used)
            predicted = wm is not None and wm.frames is not None
            real = any(e.trains_on_real_frames for e in self.experts.values())
            stack = [image[:, None]] + ([future] if real else []) + ([to_uint8(wm.frames)] if predicted else [])
            frames = torch.cat(stack, dim=1)
            frames = color_jitter(random_shift(frames, self.hparams.image_shift), self.hparams.color_jitter)
            k = future.shape[1] if real else 0  # frames after the current one that are real future frames
            image = frames[:, 0]
            if real:
                future = frames[:, 1:1 + k]
            if predicted:
                wm = WorldModelOutput(frames=to_unit_range(frames[:, 1 + k:]), features=wm.features, latents=wm.latents)
        ctx = self._base_context(image, batch["state"][:, -1], instructions)
        ctx.future_frames = future
        ctx.world_model = wm
        return ctx

    # -- training -----------------------------------------------------------------------------
    def _losses(self, batch: dict[str, Any], ctx: ExpertContext, prefix: str) -> torch.Tensor:
        weights = {PREDICTIVE: 1.0, REACTIVE: self.hparams.lambda_react}
        total = torch.zeros((), device=self.device)
        b = len(ctx.image)
        sync = prefix != "train"  # validation means over every process's batches under DDP
        for role, expert in self.experts.items():
            loss, logs = expert.compute_loss(ctx, batch["action"], batch["action_mask"])
            total = total + weights[role] * loss
            self.log(f"{prefix}/{role}_loss", loss, batch_size=b, prog_bar=prefix == "train", sync_dist=sync)
            self.log_dict({f"{prefix}/{role}_{k}": v for k, v in logs.items()}, batch_size=b, sync_dist=sync)
        if self.gate.learned:
            gate_loss = self.gate.loss(ctx.image_tokens, batch["phase_label"], ctx.state)
            total = total + self.hparams.lambda_gate * gate_loss
            self.log(f"{prefix}/gate_loss", gate_loss, batch_size=b, sync_dist=sync)
        self.log(f"{prefix}/loss", total, batch_size=b, sync_dist=sync)
        return total

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._losses(batch, self._train_context(batch, augment=True), "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        stage = "test" if self.trainer.testing else "val"
        ctx = self._train_context(batch)
        self._losses(batch, ctx, stage)
        if self.gate.learned:
            prob = self.gate.interaction_probability(ctx.image_tokens, ctx.state)
            label = batch["phase_label"].long()
            self._val["gate_accuracy"](prob, label)
            self._val["gate_f1"](prob, label)
            self.log(f"{stage}/gate_accuracy", self._val["gate_accuracy"], batch_size=len(prob))
            self.log(f"{stage}/gate_f1", self._val["gate_f1"], batch_size=len(prob))
        limit = self.hparams.val_sample_batches
        if limit is not None and batch_idx >= limit:
            return
        # Action error of each expert through its inference path (predicted frames for the reactive one). The
        # sampling noise is seeded by the batch, so the curve moves only when the weights do; the cache's first
        # sample, when it holds what inference reads, is such a prediction already computed.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(batch_idx)
            # the losses' context was built without augmentation: its encodings are what inference computes
            infer = ExpertContext(image=ctx.image, state=ctx.state, instructions=ctx.instructions,
                                  instruction_tokens=ctx.instruction_tokens, image_tokens=ctx.image_tokens)
            needs, cached = self._needs(training=False), ctx.world_model
            if (self.output_cache() is not None and cached is not None
                    and (FRAMES not in needs or cached.frames is not None)
                    and (FEATURES not in needs or cached.features is not None)):
                infer.world_model = cached
            else:
                infer.world_model = self._imagine(infer, needs)
            chunks = {role: expert.predict(infer) for role, expert in self.experts.items()}
        mask = batch["action_mask"]
        target = batch["action"][mask]
        for role in self.experts:
            metric = self._val[f"{role}_action_mse"]
            metric(chunks[role][mask], target)
            self.log(f"{stage}/{role}_action_mse", metric, batch_size=len(ctx.image))
        w = self.gate.weights(infer.image_tokens, infer.state)[:, None, None]
        policy = sum(w_r * chunks[r] for r, w_r in ((PREDICTIVE, w), (REACTIVE, 1 - w)) if r in chunks)
        self._val["policy_action_mse"](policy[mask], target)
        self.log(f"{stage}/policy_action_mse", self._val["policy_action_mse"], batch_size=len(ctx.image), prog_bar=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Unnormalised action chunks for the batch's current observations, with the expert of each."""
        raw_state = self.normalizer.unnormalize("state", batch["state"][:, -1])
        chunk = self.predict_action_chunk({"image": batch["image"][:, -1], "state": raw_state,
                                           "instruction": list(batch["instruction"])})
        return {"action": chunk, "expert": self._last_experts}

    def configure_optimizers(self) -> Any:
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad and not n.startswith("world_model.")]
        # the fused kernel: a quarter of the for-loop AdamW's time on 2 CPU cores (5M parameters, 221 tensors);
        # Lightning refuses gradient clipping with a fused optimizer under mixed precision, so that takes foreach
        mixed = self._trainer is not None and "mixed" in str(self.trainer.precision)
        fused = self.device.type in ("cpu", "cuda") and not mixed
        opt = torch.optim.AdamW(decay_and_no_decay(named, self.hparams.weight_decay), lr=self.hparams.lr,
                                fused=fused, foreach=not fused)
        total = None
        if self.hparams.lr_schedule == "cosine" and self._trainer is not None:
            total = self.trainer.max_steps if self.trainer.max_steps > 0 else int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(self.hparams.warmup_steps, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # -- weight averaging ----------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.output_cache()  # built here, before the trainer's clock (max_time) starts on the first step
        if self.hparams.ema_decay is None or self._ema is not None:
            return
        self._ema = ExponentialMovingAverage(self, self.hparams.ema_decay, skip_prefixes=("world_model.",))
        if self._ema_restore is not None:
            self._ema.load_state_dict(self._ema_restore)
            self._ema_restore = None

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        if self._ema is not None:  # here, not in on_train_batch_end: a step-interval checkpoint is written before that
            self._ema.update(self)

    def on_validation_epoch_start(self) -> None:
        if self._ema is not None:
            self._ema.swap_in(self)

    def on_validation_epoch_end(self) -> None:
        if self._ema is not None:
            self._ema.swap_out(self)

    def on_fit_end(self) -> None:
        if self._ema is not None:  # the module left in memory acts with the averaged weights, as a loaded one would
            self._ema.copy_to(self)

    def train(self, mode: bool = True) -> "PolicyModule":
        super().train(mode)
        if self.world_model is not None:
            self.world_model.eval()  # frozen: dropout and norms stay in inference mode
        return self

    # -- inference (LeRobot-style contract) -------------------------------------------------
    def reset(self, slots: Sequence[int] | None = None, seeds: Sequence[int] | None = None) -> None:
        """Start new episodes: forget the queued actions of ``slots`` (batch positions of ``select_action``;
        None: every slot, and the routing record). With ``seeds``, slot ``slots[i]`` draws its noise from a
        generator seeded ``seeds[i]``, so its actions do not depend on the episodes that share its batch."""
        if slots is None:
            self._queues: dict[int, deque[tuple[torch.Tensor, str]]] = {}
            self._generators: dict[int, torch.Generator] = {}
            self.routing_log: list[dict[str, Any]] = []
            self.replans = 0  # chunks dropped because the gate switched experts
            slots = range(len(seeds)) if seeds is not None else []
        if seeds is not None and len(seeds) != len(slots):
            raise ValueError(f"reset: {len(seeds)} seeds for {len(slots)} slots")
        for i, slot in enumerate(slots):
            self._queues.pop(slot, None)
            self._generators.pop(slot, None)
            if seeds is not None:
                self._generators[slot] = torch.Generator(device=self.device).manual_seed(int(seeds[i]))

    def _observation_context(self, observation: dict[str, Any]) -> ExpertContext:
        if self.normalizer is None:
            raise RuntimeError("the policy has no normalisation statistics: train it or load a checkpoint")
        image = observation["image"].to(self.device)
        state = self.normalizer.normalize("state", observation["state"].to(self.device).float())
        return self._base_context(image, state, observation["instruction"])

    @torch.no_grad()
    def predict_action_chunk(self, observation: dict[str, Any]) -> torch.Tensor:
        """An unnormalised action chunk ``[B, H, A]`` for ``observation`` = {image uint8 [B, 3, H, W],
        state [B, S] (raw), instruction list[str]}. Records which expert produced each sample's chunk."""
        ctx = self._observation_context(observation)
        return self._chunk(ctx, self.gate.weights(ctx.image_tokens, ctx.state))

    def _chunk(self, ctx: ExpertContext, w: torch.Tensor) -> torch.Tensor:
        use = {PREDICTIVE: w > 0, REACTIVE: w < 1}
        use = {r: m for r, m in use.items() if r in self.experts}
        b = len(ctx.image)
        # per-sample world-model needs: the union of the needs of the experts it uses
        need_frames = torch.zeros(b, dtype=torch.bool, device=self.device)
        need_feats = torch.zeros_like(need_frames)
        for role, mask in use.items():
            needs = self.experts[role].needs
            need_frames |= mask & (FRAMES in needs)
            need_feats |= mask & (FEATURES in needs)
        ctx.world_model = self._imagine_subsets(ctx, need_frames, need_feats)
        chunk = torch.zeros(b, self.shapes.action_horizon, self.shapes.action_dim, device=self.device)
        for role, mask in use.items():
            idx = mask.nonzero().squeeze(1)
            if len(idx):
                weight = w[idx] if role == PREDICTIVE else 1 - w[idx]
                chunk[idx] += weight[:, None, None] * self.experts[role].predict(ctx.select(idx))
        experts = [self._expert_name(float(x)) for x in w]
        self.routing_log.append({"weight": w.cpu(), "expert": experts})
        self._last_experts = experts
        return self.normalizer.unnormalize("action", chunk)

    def _imagine_subsets(self, ctx: ExpertContext, need_frames: torch.Tensor, need_feats: torch.Tensor
                         ) -> WorldModelOutput | None:
        if self.world_model is None or not (need_frames | need_feats).any():
            return None
        wm, b = self.world_model, len(ctx.image)
        out = WorldModelOutput()
        for decode, mask in ((self._frames_to_decode(training=False), need_frames), (0, need_feats & ~need_frames)):
            idx = mask.nonzero().squeeze(1)
            if not len(idx):
                continue
            pick = idx.tolist()
            part = wm.predict(ctx.image[idx], [ctx.instructions[i] for i in pick], decode=decode,
                              features=bool(need_feats[idx].any()), num_steps=self.hparams.world_model_steps,
                              generator=None if ctx.generators is None else [ctx.generators[i] for i in pick])
            for field in ("frames", "features", "latents"):
                value = getattr(part, field)
                if value is None:
                    continue
                if getattr(out, field) is None:
                    setattr(out, field, value.new_zeros((b, *value.shape[1:])))
                getattr(out, field)[idx] = value
        return out

    @staticmethod
    def _expert_name(weight: float) -> str:
        return PREDICTIVE if weight >= 1.0 else REACTIVE if weight <= 0.0 else "average"

    @torch.no_grad()
    def select_action(self, observation: dict[str, Any], slots: Sequence[int] | None = None) -> torch.Tensor:
        """One action ``[B, A]``; sample ``i`` continues the episode in slot ``slots[i]`` (default: slot ``i``),
        so a batch may hold episodes that started at different steps. A learned gate is read at every step
        (``gate_every_step``): when it routes a slot to another expert than the one whose actions are queued,
        the slot's queue is dropped and the new expert plans. Otherwise a slot gets a new chunk when its queue
        of ``n_action_steps`` actions runs out; only the slots that need one are planned for."""
        b = len(observation["image"])
        slots = list(range(b)) if slots is None else [int(s) for s in slots]
        if len(slots) != b or len(set(slots)) != b:
            raise ValueError(f"select_action: {b} observations need {b} distinct slots, got {slots}")
        ctx = w = None
        if self.gate.learned and self.hparams.gate_every_step:
            ctx = self._observation_context(observation)
            w = self.gate.weights(ctx.image_tokens, ctx.state)
            for slot, routed in zip(slots, (self._expert_name(float(x)) for x in w)):
                queue = self._queues.get(slot)
                if queue and queue[0][1] != routed:
                    queue.clear()
                    self.replans += 1
        plan = [i for i, slot in enumerate(slots) if not self._queues.get(slot)]
        if plan:
            idx = torch.tensor(plan, device=self.device)
            if ctx is None:
                sub = {k: (v[idx.to(v.device)] if torch.is_tensor(v) else [v[i] for i in plan])
                       for k, v in observation.items()}
                sub_ctx = self._observation_context(sub)
                sub_w = self.gate.weights(sub_ctx.image_tokens, sub_ctx.state)
            else:
                sub_ctx, sub_w = ctx.select(idx), w[idx]
            if all(slots[i] in self._generators for i in plan):
                sub_ctx.generators = [self._generators[slots[i]] for i in plan]
            chunk = self._chunk(sub_ctx, sub_w)
            steps = min(self.hparams.n_action_steps, chunk.shape[1])
            for j, i in enumerate(plan):
                self._queues[slots[i]] = deque((chunk[j, t], self._last_experts[j]) for t in range(steps))
        taken = [self._queues[slot].popleft() for slot in slots]
        self.last_experts = [expert for _, expert in taken]
        return torch.stack([action for action, _ in taken])
