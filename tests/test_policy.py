"""Experts, gates, routing and the stage-2 module."""

from pathlib import Path

import pytest
import torch

import harmowam
from conftest import REPO, write_synthetic
from harmowam.data import EpisodeStore, Normalizer
from harmowam.experts import ExpertContext, PolicyShapes
from harmowam.policy_module import PolicyModule
from test_world_model import INSTR, tiny_model

TINY_VIT = {"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}


@pytest.fixture(scope="module")
def saved_world_model(tmp_path_factory) -> Path:
    """An untrained tiny world model on disk: 2 frames at stride 6 cover a 12-step chunk."""
    path = tmp_path_factory.mktemp("wm") / "world_model"
    tiny_model(frame_stride=6).save_pretrained(path)
    return path


def _shapes(wm, horizon=12) -> PolicyShapes:
    return PolicyShapes(action_horizon=horizon, image_size=32, instruction_dim=16, image_token_dim=32,
                        wm_feature_dim=wm.feature_dim, wm_tokens_per_frame=wm.tokens_per_frame,
                        wm_num_frames=wm.num_future_frames, wm_frame_stride=wm.frame_stride)


def _context(wm, b=4, seed=0) -> tuple[ExpertContext, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 255, (b, 3, 32, 32), dtype=torch.uint8, generator=g)
    instr = (INSTR * b)[:b]
    with torch.no_grad():
        out = wm.predict(image, instr, generator=g)
    ctx = ExpertContext(image=image, state=torch.randn(b, 4, generator=g), instructions=instr,
                        instruction_tokens=torch.randn(b, 2, 16, generator=g),
                        image_tokens=torch.randn(b, 16, 32, generator=g), world_model=out,
                        future_frames=torch.randint(0, 255, (b, 2, 3, 32, 32), dtype=torch.uint8, generator=g))
    actions = torch.rand(b, 12, 4, generator=g) * 2 - 1
    return ctx, actions, torch.ones(b, 12, dtype=torch.bool)


def _fit(expert, ctx, actions, mask, steps=40, lr=3e-3):
    opt = torch.optim.AdamW(expert.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        torch.manual_seed(0)  # same diffusion noise each step: a fixed problem
        loss, logs = expert.compute_loss(ctx, actions, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("use_world_model", [True, False])
def test_predictive_expert_learns_a_fixed_batch(use_world_model):
    wm = tiny_model(frame_stride=6).eval()
    expert = harmowam.create_expert("predictive", shapes=_shapes(wm), width=32, depth=1, heads=2,
                                    use_world_model=use_world_model, num_inference_steps=3)
    assert ("features" in expert.needs) == use_world_model
    ctx, actions, mask = _context(wm)
    losses = _fit(expert, ctx, actions, mask)
    assert losses[-1] < 0.5 * losses[0]
    assert expert.predict(ctx).shape == (4, 12, 4)


@pytest.mark.parametrize("use_features", [True, False])
def test_reactive_expert_learns_a_fixed_batch(use_features):
    wm = tiny_model(frame_stride=6).eval()
    expert = harmowam.create_expert("reactive", shapes=_shapes(wm), width=32, heads=2, encoder_kwargs=TINY_VIT,
                                    use_world_model_features=use_features)
    ctx, actions, mask = _context(wm)
    losses = _fit(expert, ctx, actions, mask)
    assert losses[-1] < 0.5 * losses[0]
    assert expert.predict(ctx).shape == (4, 12, 4)  # reads predicted frames at inference
    ctx.world_model.frames = None
    with pytest.raises(ValueError, match="predicted frames"):
        expert.predict(ctx)


def test_reactive_expert_reads_only_the_frames_whose_actions_are_in_the_chunk():
    wm = tiny_model(frame_stride=4).eval()  # 2 frames x stride 4 = 8 actions; a chunk of 4 needs frame 1 only
    expert = harmowam.create_expert("reactive", shapes=_shapes(wm, horizon=4), width=32, heads=2, encoder_kwargs=TINY_VIT).eval()
    ctx, _, _ = _context(wm)
    before = expert.predict(ctx)
    ctx.world_model.frames[:, 1:] = torch.rand_like(ctx.world_model.frames[:, 1:]) * 2 - 1
    ctx.world_model.features[:, 1:] = torch.randn_like(ctx.world_model.features[:, 1:])
    torch.testing.assert_close(expert.predict(ctx), before)
    ctx.world_model.frames[:, :1] = torch.rand_like(ctx.world_model.frames[:, :1]) * 2 - 1
    assert not torch.allclose(expert.predict(ctx), before)


def test_reactive_expert_rejects_a_chunk_its_frames_cannot_cover():
    wm = tiny_model(frame_stride=2).eval()  # 2 frames x stride 2 = 4 actions < 12
    expert = harmowam.create_expert("reactive", shapes=_shapes(wm), width=32, heads=2, encoder_kwargs=TINY_VIT)
    ctx, _, _ = _context(wm)
    with pytest.raises(ValueError, match="cover fewer than 12 actions"):
        expert.predict(ctx)


@pytest.mark.parametrize("use_state", [False, True])
def test_process_adaptive_gate_learns_labels_and_switches_hard(use_state):
    gate = harmowam.create_gate("process_adaptive", shapes=PolicyShapes(image_token_dim=32), use_state=use_state)
    torch.manual_seed(0)
    tokens, state = torch.randn(16, 8, 32), torch.randn(16, 4)
    # with the state, the label is the hand's first coordinate: invisible in the tokens
    labels = ((state[:, 0] > 0) if use_state else (tokens[:, :, 0].mean(1) > 0)).float()
    opt = torch.optim.AdamW(gate.parameters(), lr=1e-2)
    for _ in range(60):
        loss = gate.loss(tokens, labels, state)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = gate.weights(tokens, state)
    assert set(w.unique().tolist()) <= {0.0, 1.0}
    assert (w == labels).float().mean() > 0.9
    if use_state:
        with pytest.raises(ValueError, match="no state"):
            gate.weights(tokens)


def _policy(world_model, experts, gate, tmp_path) -> PolicyModule:
    policy = PolicyModule(world_model=str(world_model) if world_model else None, experts=experts, gate=gate,
                          image_encoder={"model_kwargs": TINY_VIT}, instruction_encoder={"name": "learned", "dim": 16},
                          n_action_steps=3, image_size=None if world_model else 32)
    store = EpisodeStore(write_synthetic(tmp_path / "stats", [20]))
    policy.normalizer = Normalizer(store.stats, {"state": "mean_std", "action": "min_max"})
    return policy.eval()


def _observation(b=3):
    return {"image": torch.randint(0, 255, (b, 3, 32, 32), dtype=torch.uint8), "state": torch.randn(b, 4),
            "instruction": (INSTR * b)[:b]}


BOTH = {"predictive": {"name": "predictive", "width": 32, "depth": 1, "heads": 2, "num_inference_steps": 2},
        "reactive": {"name": "reactive", "width": 32, "heads": 2, "encoder_kwargs": TINY_VIT}}


def _count_calls(module: torch.nn.Module) -> list:
    calls: list = []
    module.register_forward_hook(lambda *a: calls.append(1))
    return calls


@pytest.mark.parametrize("gate, runs_predictive, runs_reactive", [
    ("always_predictive", True, False), ("always_reactive", False, True), ("average", True, True)])
def test_routing_runs_only_what_the_gate_chose(saved_world_model, tmp_path, gate, runs_predictive, runs_reactive):
    policy = _policy(saved_world_model, BOTH, gate, tmp_path)
    predictive = _count_calls(policy.experts["predictive"].blocks)
    reactive = _count_calls(policy.experts["reactive"].encoder)
    decoder = _count_calls(policy.world_model.vae.decoder)
    chunk = policy.predict_action_chunk(_observation())
    assert chunk.shape == (3, 12, 4)
    assert bool(predictive) == runs_predictive
    assert bool(reactive) == runs_reactive
    assert bool(decoder) == runs_reactive  # only the reactive path decodes frames
    expected = {"always_predictive": "predictive", "always_reactive": "reactive", "average": "average"}[gate]
    assert policy.routing_log[-1]["expert"] == [expected] * 3


def test_imagining_for_features_alone_decodes_no_frames(saved_world_model, tmp_path):
    from harmowam.experts.base import FEATURES, FRAMES

    policy = _policy(saved_world_model, BOTH, "average", tmp_path)
    decoder = _count_calls(policy.world_model.vae.decoder)
    obs = _observation()
    ctx = policy._observation_context(obs)
    with torch.no_grad():
        features_only = policy._imagine(ctx, {FEATURES})
        assert features_only.frames is None and features_only.features is not None and not decoder
        both = policy._imagine(ctx, {FEATURES, FRAMES})
    assert both.frames.shape[1] == policy.experts["reactive"].frames_read


def test_averaging_arithmetic(tmp_path):
    experts = {"predictive": {"name": "mlp", "hidden": 16}, "reactive": {"name": "mlp", "hidden": 16}}
    torch.manual_seed(0)
    policy = _policy(None, experts, "average", tmp_path)
    obs = _observation()
    chunk = policy.predict_action_chunk(obs)
    state = policy.normalizer.normalize("state", obs["state"])
    ctx = policy._base_context(obs["image"], state, obs["instruction"])
    a_pred, a_react = policy.experts["predictive"].predict(ctx), policy.experts["reactive"].predict(ctx)
    assert not torch.allclose(a_pred, a_react)
    torch.testing.assert_close(chunk, policy.normalizer.unnormalize("action", (a_pred + a_react) / 2))


def test_select_action_queues_a_chunk_and_reset_clears_it(tmp_path):
    policy = _policy(None, {"predictive": {"name": "mlp", "hidden": 16}}, "always_predictive", tmp_path)
    obs = _observation(b=2)
    actions = [policy.select_action(obs) for _ in range(4)]  # n_action_steps=3: a new chunk at step 4
    assert actions[0].shape == (2, 4)
    assert len(policy.routing_log) == 2 and policy.last_experts == ["predictive", "predictive"]
    policy.reset()
    assert policy.routing_log == [] and not policy._queues


def test_slots_act_as_their_episodes_would_alone(saved_world_model, tmp_path):
    """Batched evaluation: an episode's actions do not depend on which episodes share its batch or when they
    started (its own queue, its own seeded noise in the diffusion expert and the world model)."""
    policy = _policy(saved_world_model, BOTH, "average", tmp_path)
    obs = _observation(b=3)
    alone = []
    policy.reset([0], [7])
    for _ in range(5):
        alone.append(policy.select_action({k: v[:1] for k, v in obs.items()}, slots=[0]))
    policy.reset()
    policy.reset([4, 9], [7, 8])  # the same episode in slot 4, beside another one
    batched = [policy.select_action({k: v[:2] for k, v in obs.items()}, slots=[4, 9])]
    policy.reset([2], [3])  # a third episode joins at step 2: slots 4 and 9 keep their queues
    for _ in range(4):
        batched.append(policy.select_action(obs, slots=[4, 9, 2]))
    for a, b in zip(alone, batched):
        torch.testing.assert_close(a[0], b[0], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(batched[0][0], batched[0][1])  # another seed, another chunk
    with pytest.raises(ValueError, match="distinct slots"):
        policy.select_action(obs, slots=[1, 1, 2])


def test_config_errors_are_clear(saved_world_model, tmp_path):
    with pytest.raises(ValueError, match=r"routes to \['reactive'\]"):
        _policy(saved_world_model, {"predictive": BOTH["predictive"]}, "process_adaptive", tmp_path)
    with pytest.raises(ValueError, match="roles"):
        _policy(saved_world_model, {"fast": BOTH["predictive"]}, "always_predictive", tmp_path)
    with pytest.raises(ValueError, match="needs the world model"):
        _policy(None, {"predictive": BOTH["predictive"]}, "always_predictive", tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _policy(tmp_path / "nope", BOTH, "average", tmp_path)


def test_every_experiment_config_instantiates(tmp_path, monkeypatch):
    """Through the `lightning` command's own CLI (bases expanded); the SigLIP/DINOv2/T5 config needs real weights."""
    import lightning as L

    from harmowam.cli import build_cli

    tiny_model(image_size=64, num_future_frames=4, frame_stride=4).save_pretrained(tmp_path / "checkpoints" / "world_model")
    monkeypatch.chdir(tmp_path)
    configs = sorted((REPO / "experiments").rglob("*.yaml"))
    configs = [c for c in configs if "sweeps" not in c.parts and c.name != "siglip_dinov2_t5.yaml"]
    assert len(configs) >= 13
    for config in configs:
        cli = build_cli(["-c", str(config), "--trainer.logger=false"], run=False)
        assert isinstance(cli.model, L.LightningModule), config


def test_stage2_lightning_fit_on_a_tiny_config(tiny_policy_ckpt, tiny_data):
    policy = PolicyModule.load_from_checkpoint(tiny_policy_ckpt).eval()
    store = EpisodeStore(tiny_data)
    ep = store.episode(0)
    obs = {"image": torch.from_numpy(ep["image"][:2]).permute(0, 3, 1, 2), "state": torch.from_numpy(ep["state"][:2]),
           "instruction": [store.episodes[0].instruction] * 2}
    assert policy.predict_action_chunk(obs).shape == (2, 4, 4)


def test_checkpoint_holds_the_weight_average_and_the_training_weights(tiny_policy_ckpt):
    ckpt = torch.load(tiny_policy_ckpt, map_location="cpu", weights_only=False)
    ema = ckpt["ema"]
    assert ema["num_updates"] > 0 and ema["training_weights"]
    assert not any(k.startswith("world_model.") for k in ema["training_weights"])  # the frozen model is not averaged
    differs = [k for k, v in ema["training_weights"].items() if not torch.equal(v, ckpt["state_dict"][k])]
    assert differs  # the average lags the training weights
    policy = PolicyModule.load_from_checkpoint(tiny_policy_ckpt)
    name = differs[0]
    torch.testing.assert_close(dict(policy.named_parameters())[name].detach(), ckpt["state_dict"][name])


def test_history_is_refused_not_dropped(saved_world_model, tmp_path):
    import lightning as L

    from harmowam.data import EpisodeDataModule

    data = write_synthetic(tmp_path / "d", [20, 20], image_size=32)
    policy = PolicyModule(world_model=str(saved_world_model), experts={"predictive": BOTH["predictive"]},
                          gate="always_predictive", image_encoder={"model_kwargs": TINY_VIT},
                          instruction_encoder={"name": "learned", "dim": 16})
    dm = EpisodeDataModule([str(data)], num_history=2, num_future_frames=2, future_stride=6, batch_size=4)
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="num_history=2"):
        trainer.fit(policy, datamodule=dm)


def test_gate_is_read_every_step_and_a_switch_drops_the_queued_chunk(saved_world_model, tmp_path):
    policy = _policy(saved_world_model, BOTH, {"name": "process_adaptive", "use_state": True}, tmp_path)
    policy.hparams.n_action_steps = 6
    gate = policy.gate
    with torch.no_grad():  # a gate that reads only the state's first coordinate: interaction when it is positive
        for layer in gate.mlp:
            if hasattr(layer, "weight"):
                layer.weight.zero_()
                layer.bias.zero_()
        gate.mlp[0].weight.fill_(1.0)
        gate.mlp[1].weight[0, -4] = 1.0
        gate.mlp[3].weight.fill_(10.0)
        gate.mlp[3].bias.fill_(-1.0)
    obs = _observation(b=1)
    policy.reset()
    experts = []
    for t in range(8):
        state = obs["state"].clone()
        state[:, 0] = policy.normalizer.unnormalize("state", torch.full((1, 4), -3.0 if t < 3 else 3.0))[:, 0]
        policy.select_action({**obs, "state": state})
        experts.append(policy.last_experts[0])
    assert experts == ["reactive"] * 3 + ["predictive"] * 5
    assert policy.replans == 1 and len(policy.routing_log) == 2  # the reactive chunk was cut at step 3


def test_mixed_precision_trains_with_gradient_clipping(saved_world_model, tmp_path):
    """Lightning refuses to clip the gradients of a fused optimizer under mixed precision (the GPU set-up)."""
    import lightning as L

    from harmowam.data import EpisodeDataModule

    data = write_synthetic(tmp_path / "d", [20, 20], image_size=32)
    policy = PolicyModule(world_model=str(saved_world_model), experts={"predictive": BOTH["predictive"]},
                          gate="always_predictive", image_encoder={"model_kwargs": TINY_VIT},
                          instruction_encoder={"name": "learned", "dim": 16}, world_model_cache=False)
    dm = EpisodeDataModule([str(data)], num_future_frames=2, future_stride=6, batch_size=4)
    before = {n: p.detach().clone() for n, p in policy.experts.named_parameters()}
    trainer = L.Trainer(max_steps=2, precision="bf16-mixed", gradient_clip_val=1.0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, limit_val_batches=0)
    trainer.fit(policy, datamodule=dm)
    assert any(not torch.equal(p, before[n]) for n, p in policy.experts.named_parameters())
