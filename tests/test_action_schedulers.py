"""Each action scheduler must sample back what its expert was trained on.

A tiny predictive expert is fitted to one fixed chunk with a fixed context; sampling
through ``predict`` must then reproduce that chunk. This catches a timestep scale
that differs between training and sampling (flow matching once trained at
``1000 * sigma`` and sampled at ``100 * sigma``).
"""

import pytest
import torch

import harmowam
from harmowam.experts import ExpertContext, PolicyShapes
from harmowam.experts.noise_schedule import ActionNoiseSchedule


@pytest.mark.parametrize("prediction", ["noise", "sample"])
@pytest.mark.parametrize("scheduler", ["ddim", "ddpm", "flow_matching"])
def test_a_fitted_expert_reproduces_its_chunk_through_predict(scheduler, prediction):
    torch.manual_seed(0)
    shapes = PolicyShapes(action_horizon=4, image_token_dim=8, instruction_dim=8)
    expert = harmowam.create_expert("predictive", shapes=shapes, width=32, depth=1, heads=2, use_world_model=False,
                                    scheduler=scheduler, num_inference_steps=10, prediction=prediction,
                                    noise_samples=2)
    ctx = ExpertContext(image=torch.zeros(1, 3, 8, 8, dtype=torch.uint8), state=torch.zeros(1, 4), instructions=["x"],
                        instruction_tokens=torch.zeros(1, 1, 8), image_tokens=torch.zeros(1, 2, 8))
    target = torch.tensor([[[0.5, -0.5, 0.2, -0.8], [0.1, 0.3, -0.2, 0.6],
                            [-0.4, 0.0, 0.7, -0.1], [0.9, -0.3, 0.4, 0.2]]])
    opt = torch.optim.AdamW(expert.parameters(), lr=2e-3, weight_decay=0.0)
    batch = ExpertContext(image=ctx.image.expand(32, -1, -1, -1), state=ctx.state.expand(32, -1), instructions=["x"] * 32,
                          instruction_tokens=ctx.instruction_tokens.expand(32, -1, -1),
                          image_tokens=ctx.image_tokens.expand(32, -1, -1))
    mask = torch.ones(32, 4, dtype=torch.bool)
    for _ in range(300):
        loss, _ = expert.compute_loss(batch, target.expand(32, -1, -1), mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    sampled = expert.predict(batch)
    err = (sampled - target).abs().mean().item()
    assert err < 0.1, f"{scheduler}/{prediction}: sampled chunks are {err:.3f} from the one chunk the expert was fitted to"


def test_every_scheduler_feeds_the_network_timesteps_on_one_scale():
    for kind in ("ddim", "ddpm", "flow_matching"):
        schedule = ActionNoiseSchedule(kind, num_train_timesteps=100, num_inference_steps=10)
        _, t_train, _ = schedule.training_pair(torch.zeros(512, 4, 4))
        sampler = schedule.sampler()
        sampler.set_timesteps(10)
        t_sample = schedule.model_timestep(sampler.timesteps)
        assert 0 <= t_train.min() and t_train.max() <= 1000, kind
        assert t_sample.max() > 800 and t_sample.min() < 200, (kind, t_sample)  # the whole range, not a tenth of it


def test_bad_scheduler_settings_are_refused():
    with pytest.raises(ValueError, match="choose from"):
        ActionNoiseSchedule("euler")
    with pytest.raises(ValueError, match="prediction 'velocity'; choose from noise, sample"):
        ActionNoiseSchedule("ddim", prediction="velocity")
    with pytest.raises(ValueError, match="num_inference_steps"):
        ActionNoiseSchedule("ddim", num_train_timesteps=100, num_inference_steps=0)
