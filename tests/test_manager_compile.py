"""The two hot paths stay compilable: the update's loss computation and the planner are each one
graph for torch.compile (no graph breaks: no host syncs, no generator calls, no data-dependent
Python), and compiled they compute what the eager code does."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from manager.agent import Agent
from manager.config import apply_profile, make_config, resolve_for_env
from manager.data import SequenceSampler
from manager.inference import LatentPlanner
from manager.planner import _draw
from manager.trainer import TrainConfig, Trainer, resolve

MODES = ["manager", "iql_td_mpc", "td_mpc"]
# besides each mode's defaults: the TD target on a policy sample, and IQL's V(z') target
VARIANTS = {"defaults": {}, "sample_bootstrap": {"bootstrap": "sample"}, "v_target": {"critic_loss": "iql"}}


def agent_and_sampler(data, mode: str, **overrides):
    cfg = resolve_for_env(apply_profile(make_config(mode, **overrides), "smoke"), "maze2d-umaze-v1")
    sampler = SequenceSampler(data, cfg.horizon, cfg.k, cfg.reward_scale, seed=0, prioritized=cfg.prioritized_replay)
    return Agent(4, 2, cfg, "cpu", seed=0), sampler


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("mode", MODES)
def test_update_losses_trace_as_one_graph(umaze_small, mode, variant):
    agent, sampler = agent_and_sampler(umaze_small[1], mode, **VARIANTS[variant])
    batch = sampler.sample(agent.cfg.batch_size)
    explained = torch._dynamo.explain(agent.losses)(batch, agent.draw_noise(*batch.rewards.shape))
    reasons = [str(r.reason) for r in explained.break_reasons]
    assert explained.graph_break_count == 0, reasons
    assert explained.graph_count == 1


def test_noise_is_drawn_per_mode_with_the_right_shapes(umaze_small):
    data = umaze_small[1]
    shapes = {}
    for mode in MODES:
        agent, _ = agent_and_sampler(data, mode)
        noise = agent.draw_noise(3, 5)
        shapes[mode] = {k: None if v is None else tuple(v.shape) for k, v in noise._asdict().items()}
    L, C = make_config("manager").num_categoricals, make_config("manager").num_classes
    assert shapes["manager"] == {"inverse": (3, 5, L, C), "bootstrap": None, "policy": None}
    assert shapes["iql_td_mpc"] == {"inverse": None, "bootstrap": None, "policy": (3, 5, 2)}
    assert shapes["td_mpc"] == {"inverse": None, "bootstrap": (3, 5, 2), "policy": (3, 5, 2)}
    # the draws come from the agent's generator: same seed, same noise; the next draw differs
    a, _ = agent_and_sampler(data, "manager")
    b, _ = agent_and_sampler(data, "manager")
    first = a.draw_noise(3, 5).inverse
    assert torch.equal(first, b.draw_noise(3, 5).inverse)
    assert not torch.equal(first, a.draw_noise(3, 5).inverse)


@pytest.mark.parametrize("mode", MODES)
def test_compiled_update_trains_like_the_eager_one(umaze_small, mode):
    """AOTAutograd's joint forward/backward graph (the part of torch.compile that changes the
    update's structure) against eager, three updates on the same batches, each mode's gradients
    (td_mpc's policy gradient through Q_frozen included) flowing through the one compiled node."""
    data = umaze_small[1]
    eager, sampler = agent_and_sampler(data, mode)
    compiled, _ = agent_and_sampler(data, mode)
    compiled.compile(backend="aot_eager")
    for _ in range(3):
        batch = sampler.sample(eager.cfg.batch_size)
        got, want = compiled.update(batch), eager.update(batch)
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5, msg=key)
        if eager.cfg.prioritized_replay:
            torch.testing.assert_close(compiled.priorities, eager.priorities, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(eager.model.named_parameters(), compiled.model.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5, msg=name)
    fresh, _ = agent_and_sampler(data, mode)
    assert any(not torch.equal(p, q) for p, q in zip(fresh.model.parameters(), eager.model.parameters()))


def test_tdmpc_policy_loss_trains_the_policy_and_not_q(umaze_small):
    """One backward pass serves both losses: TD-MPC's policy loss reaches Q's input, never its weights."""
    agent, sampler = agent_and_sampler(umaze_small[1], "td_mpc")
    for _ in range(10):  # Q's output layer starts at zero (a constant Q has no action gradient)
        agent.update(sampler.sample(agent.cfg.batch_size))
    batch = sampler.sample(agent.cfg.batch_size)
    out = agent.losses(batch, agent.draw_noise(*batch.rewards.shape))
    q_params = list(agent.model.q_heads.parameters())
    policy_params = list(agent.model.policy.parameters())
    q_grads = torch.autograd.grad(out.policy_loss, q_params, retain_graph=True, allow_unused=True)
    assert all(g is None or not g.any() for g in q_grads)
    policy_grads = torch.autograd.grad(out.policy_loss, policy_params)
    assert all(g.abs().sum() > 0 for g in policy_grads[-2:])  # the output layer moves


def planner_for(mode: str, seed: int = 3) -> LatentPlanner:
    cfg = resolve_for_env(apply_profile(make_config(mode), "smoke"), "maze2d-umaze-v1")
    model = Agent(4, 2, cfg, "cpu", seed=0).model
    return LatentPlanner(model, cfg, torch.zeros(4), torch.ones(4), torch.device("cpu"), seed=seed)


@pytest.mark.parametrize("mode", MODES)
def test_plan_traces_as_one_graph(mode):
    planner = planner_for(mode)
    z = planner.model.encode(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)))
    warm_starts = [None, torch.zeros(planner.cfg.horizon, 5, 2)] if mode == "td_mpc" else [None]
    for prev_mean in warm_starts:
        explained = torch._dynamo.explain(planner._plan_from_noise)(z, planner.draw(z), prev_mean)
        assert explained.graph_break_count == 0, [str(r.reason) for r in explained.break_reasons]
        assert explained.graph_count == 1


def test_elite_draw_from_exponential_noise_is_multinomials_draw():
    """argmax(w / q), q ~ Exp(1): the draw torch.multinomial makes, from the same generator state."""
    weights = torch.softmax(torch.randn(200, 7, generator=torch.Generator().manual_seed(1)), -1)
    q = torch.empty_like(weights).exponential_(1.0, generator=torch.Generator().manual_seed(2))
    want = torch.multinomial(weights, 1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(_draw(weights, q), want)
    assert len(set(want.flatten().tolist())) > 3  # really a draw, not always the argmax


@pytest.mark.parametrize("mode", MODES)
def test_compiled_planner_plans_like_the_eager_one(mode):
    eager, compiled = planner_for(mode), planner_for(mode)
    compiled.compile(backend="aot_eager")
    obs = torch.randn(6, 4, generator=torch.Generator().manual_seed(4)).numpy()
    plans = [(compiled(obs), eager(obs)) for _ in range(3)]  # td_mpc: the 2nd and 3rd are warm-started
    for got, want in plans:
        torch.testing.assert_close(torch.as_tensor(got), torch.as_tensor(want), rtol=1e-5, atol=1e-6)
    assert not all((a == b).all() for (a, _), (b, _) in zip(plans, plans[1:]))  # the plans are draws


def test_compile_flag_compiles_the_update_and_the_flat_agents_planner(data_dir, tmp_path, monkeypatch):
    """--compile reaches both hot paths of a run (AOTAutograd's graphs here, inductor for users)."""
    compiled = []

    def recording(cls):
        original = cls.compile

        def compile_with_aot_eager(self, **kwargs):
            compiled.append((cls.__name__, kwargs))
            original(self, backend="aot_eager")
        return compile_with_aot_eager

    monkeypatch.setattr(Agent, "compile", recording(Agent))
    monkeypatch.setattr(LatentPlanner, "compile", recording(LatentPlanner))
    cfg = TrainConfig(mode="iql_td_mpc", env="maze2d-umaze-v1", profile="smoke", steps=20, runs_dir=str(tmp_path),
                      data_dir=str(data_dir), log_every=10, checkpoint_every=10, eval_episodes=2, progress=False,
                      compile=True, compile_mode="reduce-overhead")
    result = Trainer(resolve(cfg)).train()
    # --compile-mode reaches torch.compile's mode in both (CUDA graphs on a GPU)
    assert compiled == [("Agent", {"mode": "reduce-overhead"}), ("LatentPlanner", {"mode": "reduce-overhead"})]
    assert result["steps"] == 20 and -50 < result["normalized_score"] < 200
    with pytest.raises(ValueError, match="--compile-mode reduce-overhead needs --compile"):
        resolve(dataclasses.replace(cfg, compile=False))


def test_worker_flag_compiles_the_managers_planner(smoke_manager, umaze_small, monkeypatch):
    """--compile_manager: the intent source's planner is compiled and plans the same intents."""
    from corl.shared.config import WorkerConfig
    from wrappers import make_intent_source

    assert "compile_manager" in WorkerConfig.__dataclass_fields__
    original = LatentPlanner.compile
    monkeypatch.setattr(LatentPlanner, "compile", lambda self, **kw: original(self, backend="aot_eager"))
    obs = umaze_small[1]["observations"][:5]
    sources = [make_intent_source("manager", smoke_manager, "maze2d-umaze-v1", 4, seed=1, compile_planner=flag)
               for flag in (True, False)]
    assert sources[0].manager.planner._plan is not sources[0].manager.planner._plan_from_noise
    assert sources[1].manager.planner._plan == sources[1].manager.planner._plan_from_noise
    for _ in range(2):
        got, want = (source.plan_intents(obs) for source in sources)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
