"""The IDQL worker: the DDPM behaviour policy (schedule, loss, sampler, a bimodal toy), the critic
update, batched action selection with rigged critics, presets, smoke runs without intents and with
the Manager's, same seed -> same numbers, and an interrupted run equal to an uninterrupted one."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from common.checkpoint import load_checkpoint
from corl import idql
from corl.shared import config as worker_config
from corl.shared.nets import QNetwork
from worker_helpers import ENV, assert_presets, metrics_rows, smoke_run


# small networks and few candidates keep the end-to-end runs fast on a CPU
SMALL = ["--actor_hidden_dim", "32", "--actor_num_blocks", "1", "--time_dim", "16", "--num_samples", "8",
         "--batch_size", "64", "--steps", "100"]


def tiny_policy(state_dim: int = 3, action_dim: int = 2, hidden_dim: int = 32, num_blocks: int = 1,
                dropout: float = 0.0, seed: int = 0) -> idql.DDPM:
    torch.manual_seed(seed)
    model = idql.NoisePredictor(state_dim, action_dim, hidden_dim, num_blocks, time_dim=16, dropout=dropout)
    return idql.DDPM(model, action_dim, steps=5)


def tiny_idql(seed: int = 0, max_steps: int = 100, selection: str = "expectile", num_samples: int = 8,
              dropout: float = 0.1, value_layer_norm: bool = False) -> idql.IDQL:
    """Networks initialised from `seed`; the evaluation sampler's seed is always 0."""
    policy = tiny_policy(dropout=dropout, seed=seed)
    vf = idql.ValueNetwork(3, 16, value_layer_norm)
    return idql.IDQL(policy, QNetwork(3, 2, 16), QNetwork(3, 2, 16), vf, max_steps, vf_lr=1e-2, qf_lr=1e-2,
                     actor_lr=1e-2, actor_weight_decay=1e-4, actor_tau=0.5, iql_tau=0.7, discount=0.99, tau=0.1,
                     num_samples=num_samples, selection=selection, seed=0)


def tiny_batch(n: int = 32, seed: int = 1) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, generator=g), torch.rand(n, 2, generator=g) * 2 - 1, torch.randn(n, 1, generator=g),
            torch.randn(n, 3, generator=g), (torch.rand(n, 1, generator=g) < 0.2).float()]


def fixed_noise_loss(policy: idql.DDPM, states: Tensor, actions: Tensor) -> float:
    """The diffusion loss with the same timesteps and noise every call (averaged over 8 draws)."""
    torch.manual_seed(123)
    with torch.no_grad():
        return float(np.mean([policy.loss(states, actions).item() for _ in range(8)]))


# --- the diffusion model --------------------------------------------------------------------------
def test_vp_beta_schedule_by_hand():
    betas = idql.vp_beta_schedule(5)
    t = np.arange(1, 6)
    expected = 1 - np.exp(-0.1 / 5 - 0.5 * 9.9 * (2 * t - 1) / 25)
    np.testing.assert_allclose(betas.numpy(), expected, rtol=1e-6)
    policy = tiny_policy()
    np.testing.assert_allclose(policy.alpha_hats.numpy(), np.cumprod(1 - expected), rtol=1e-5)
    assert policy.alpha_hats[-1] < 0.01  # x_T is (almost) pure noise: exp(-(0.1 + 4.95))


def test_diffusion_loss_decreases_on_a_fixed_batch():
    policy = tiny_policy()
    states, actions = tiny_batch(64)[:2]
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    before = fixed_noise_loss(policy, states, actions)
    for _ in range(100):
        loss = policy.loss(states, actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fixed_noise_loss(policy, states, actions)
    assert after < 0.4 * before, (before, after)  # about 2.0 -> 0.35


def test_diffusion_model_fits_a_bimodal_distribution():
    """Actions +-0.6 (noise 0.05), half each: after training, samples land near both modes far more
    often than the untrained model's (chance) do, and more densely there than between the modes
    (T = 5 steps leave a thin bridge between them: the last reverse step is a posterior mean)."""
    g = torch.Generator().manual_seed(0)
    n = 2048
    actions = (torch.randint(2, (n, 1), generator=g) * 1.2 - 0.6) + 0.05 * torch.randn(n, 1, generator=g)
    states = torch.zeros(n, 2)
    policy = tiny_policy(state_dim=2, action_dim=1, hidden_dim=64, num_blocks=2)

    def fractions_near(p: idql.DDPM, centres: tuple[float, ...]) -> list[float]:
        samples = p.sample(torch.zeros(2000, 2), torch.Generator().manual_seed(1)).squeeze(-1)
        return [float(((samples - c).abs() < 0.2).float().mean()) for c in centres]

    chance = sum(fractions_near(policy, (0.6, -0.6)))
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    for _ in range(400):
        idx = torch.randint(n, (256,), generator=g)
        loss = policy.loss(states[idx], actions[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    upper, lower, middle = fractions_near(policy, (0.6, -0.6, 0.0))
    assert upper + lower > 0.6 and upper + lower > chance + 0.3, (upper, lower, chance)
    assert min(upper, lower) > 1.5 * middle and min(upper, lower) > 0.25, (upper, lower, middle)  # both modes


def test_candidates_have_shape_b_n_act_and_lie_in_the_box():
    algo = tiny_idql(num_samples=16)
    obs = 3 * torch.randn(5, 3)
    candidates = algo.candidates(obs)
    assert candidates.shape == (5, 16, 2)
    assert candidates.abs().max() <= 1.0
    actions = algo.act(obs)
    assert actions.shape == (5, 2) and actions.abs().max() <= 1.0
    algo.ema_policy.clip_sampler = False  # the final clip still holds
    assert algo.candidates(100 * obs).abs().max() <= 1.0


# --- action selection -------------------------------------------------------------------------------
def test_selection_weights_by_hand():
    adv = torch.tensor([[1.0, -1.0, 0.0]])
    torch.testing.assert_close(idql.selection_weights(adv, "expectile", 0.9, 3.0), torch.tensor([[0.9, 0.1, 0.9]]))
    softmax = torch.tensor([math.exp(3), math.exp(-3), 1.0])
    torch.testing.assert_close(idql.selection_weights(adv, "softmax", 0.9, 3.0), (softmax / softmax.sum())[None])
    torch.testing.assert_close(idql.selection_weights(adv, "argmax", 0.9, 3.0), torch.tensor([[1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="unknown selection"):
        idql.selection_weights(adv, "greedy", 0.9, 3.0)
    with pytest.raises(ValueError, match="unknown selection"):
        tiny_idql(selection="greedy")


def test_pick_draws_in_proportion_to_the_weights():
    candidates = torch.tensor([[[-1.0], [1.0]]]).expand(4000, -1, -1)  # (B, 2, 1)
    weights = torch.tensor([[0.1, 0.9]]).expand(4000, -1)
    picked = idql.pick(candidates, weights, torch.Generator().manual_seed(0))
    assert picked.shape == (4000, 1)
    assert abs(float((picked == 1.0).float().mean()) - 0.9) < 0.03


class RiggedQ(nn.Module):
    """Q(s, a) = a_0: the larger the first action component, the better."""

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        return action[..., 0]


class ZeroV(nn.Module):
    def forward(self, state: Tensor) -> Tensor:
        return torch.zeros(state.shape[:-1])


def rigged(selection: str) -> idql.IDQL:
    algo = tiny_idql(num_samples=16, selection=selection)
    algo.target_critic_1, algo.target_critic_2, algo.vf = RiggedQ(), RiggedQ(), ZeroV()
    return algo


def test_argmax_selection_takes_the_highest_q_candidate():
    algo = rigged("argmax")
    obs = torch.randn(64, 3)
    algo.reset(np.arange(64))
    candidates = algo.candidates(obs)
    algo.reset(np.arange(64))  # same stream: act draws the same candidates
    actions = algo.act(obs)
    torch.testing.assert_close(actions[:, 0], candidates[..., 0].max(dim=1).values)


@pytest.mark.parametrize("selection", ["expectile", "softmax"])
def test_sampled_selection_prefers_the_higher_q_candidates(selection):
    algo = rigged(selection)
    algo.iql_tau, algo.policy_temperature = 0.9, 20.0
    obs = torch.randn(512, 3)
    algo.reset(np.arange(512))
    positive_candidates = float((algo.candidates(obs)[..., 0] > 0).float().mean())
    algo.reset(np.arange(512))
    positive_chosen = float((algo.act(obs)[:, 0] > 0).float().mean())
    assert 0.2 < positive_candidates < 0.8  # both kinds of candidates are on offer
    assert positive_chosen > 0.8 and positive_chosen > positive_candidates + 0.15, (positive_candidates,
                                                                                     positive_chosen)


def test_evaluation_rounds_are_reproducible():
    algo = tiny_idql()
    obs = torch.randn(4, 3)
    algo.reset(np.arange(4))
    first = algo.act(obs)
    algo.reset(np.arange(4))
    assert torch.equal(first, algo.act(obs))
    algo.reset(np.arange(4, 8))
    assert not torch.equal(first, algo.act(obs))
    state = torch.get_rng_state()
    algo.act(obs)
    assert torch.equal(state, torch.get_rng_state())  # acting never moves the training RNG


# --- the update -----------------------------------------------------------------------------------
def test_one_update_moves_every_network_and_the_targets_by_their_taus():
    algo = tiny_idql()
    names = ("policy", "ema_policy", "critic_1", "critic_2", "target_critic_1", "target_critic_2", "vf")
    before = {name: [p.detach().clone() for p in getattr(algo, name).parameters()] for name in names}
    metrics = algo.update(tiny_batch())
    assert set(metrics) == {"actor_loss", "value_loss", "q_loss"}
    assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in metrics.values())
    for name in ("policy", "critic_1", "critic_2", "vf"):
        assert all(not torch.equal(a, p) for a, p in zip(before[name], getattr(algo, name).parameters())), name
    for target, online, tau in (("ema_policy", "policy", 0.5), ("target_critic_1", "critic_1", 0.1),
                                ("target_critic_2", "critic_2", 0.1)):
        for old, p, t in zip(before[target], getattr(algo, online).parameters(), getattr(algo, target).parameters()):
            torch.testing.assert_close(t, (1 - tau) * old + tau * p)
    assert algo.total_it == 1 and algo.policy.training and not algo.ema_policy.training


def test_critic_learns_on_a_fixed_terminal_batch():
    """Every transition terminal: Q regresses onto r, V (expectile 0.7 of min Q_target) follows."""
    states, actions, rewards, next_states, _ = tiny_batch(64)
    batch = [states, actions, rewards, next_states, torch.ones_like(rewards)]
    algo = tiny_idql(max_steps=200)

    @torch.no_grad()
    def errors() -> tuple[float, float]:
        target = rewards.squeeze(-1)
        return (float((algo.min_target_q(states, actions) - target).abs().mean()),
                float((algo.vf(states) - target).abs().mean()))

    q_error, v_error = errors()
    q_losses = torch.stack([algo.update(batch)["q_loss"] for _ in range(200)])
    assert q_losses[-1] < 0.02 * q_losses[0]
    assert errors()[0] < min(0.1, 0.2 * q_error) and errors()[1] < 0.5 * v_error


def test_actor_learning_rate_follows_the_cosine_schedule():
    algo = tiny_idql(max_steps=4)
    lrs = []
    for _ in range(4):
        algo.update(tiny_batch())
        lrs.append(algo.actor_optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([1e-2 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(1, 5)], abs=1e-12)
    assert algo.q_optimizer.param_groups[0]["lr"] == 1e-2 and algo.v_optimizer.param_groups[0]["lr"] == 1e-2
    assert algo.actor_optimizer.param_groups[0]["weight_decay"] == 1e-4


def updates(algo: idql.IDQL, n: int) -> list[dict[str, Tensor]]:
    """n updates on fresh batches, the global RNG (noise, timesteps, dropout) seeded first."""
    torch.manual_seed(3)
    return [algo.update(tiny_batch(seed=10 + i)) for i in range(n)]


def test_state_dict_round_trip_continues_identically():
    algo = tiny_idql(0)
    updates(algo, 3)
    saved = copy.deepcopy(algo.state_dict())  # (a loaded optimiser state shares tensors)
    expected = updates(algo, 2)
    other = tiny_idql(5)
    other.load_state_dict(saved)
    assert other.total_it == 3 and other.actor_lr_schedule.last_epoch == 3
    got = updates(other, 2)
    assert all(torch.equal(e[k], g[k]) for e, g in zip(expected, got) for k in e)
    for name in ("ema_policy", "target_critic_1", "target_critic_2", "vf"):
        pairs = zip(getattr(algo, name).parameters(), getattr(other, name).parameters())
        assert all(torch.equal(x, y) for x, y in pairs), name
    obs = torch.randn(4, 3)
    for a in (algo, other):
        a.reset(np.arange(4))
    assert torch.equal(algo.act(obs), other.act(obs))


def test_dataset_actions_are_clipped_like_idql():
    data = {"actions": np.array([[2.0, -4.0], [0.5, 1.0]], np.float32), "rewards": np.zeros(2)}
    out = idql.clip_actions(data)
    np.testing.assert_allclose(out["actions"], [[1 - 1e-5, -(1 - 1e-5)], [0.5, 1 - 1e-5]], rtol=1e-7)
    assert out["rewards"] is data["rewards"] and data["actions"][0, 0] == 2.0  # a new dict, input untouched


def test_presets_load():
    cfg = worker_config.parse_worker_config(idql.IDQLConfig, "idql", ["--env", ENV])
    assert (cfg.algo, cfg.iql_tau, cfg.normalize, cfg.normalize_reward, cfg.batch_size, cfg.value_layer_norm) == (
        "idql", 0.7, True, False, 512, False)
    assert (cfg.discount, cfg.tau, cfg.vf_lr, cfg.qf_lr, cfg.actor_lr, cfg.actor_tau) == (
        0.99, 0.005, 3e-4, 3e-4, 3e-4, 0.001)
    assert (cfg.diffusion_steps, cfg.num_samples, cfg.actor_num_blocks, cfg.actor_hidden_dim, cfg.actor_dropout,
            cfg.time_dim, cfg.selection) == (5, 64, 3, 256, 0.1, 128, "expectile")
    cfg = worker_config.parse_worker_config(idql.IDQLConfig, "idql", ["--env", ENV, "--selection", "argmax"])
    assert cfg.selection == "argmax"
    assert_presets("idql", idql.IDQLConfig,
                   {"antmaze": {"iql_tau": 0.9, "normalize_reward": True, "value_layer_norm": True},
                    "halfcheetah": {"iql_tau": 0.7, "normalize_reward": True, "value_layer_norm": True},
                    "maze2d": {"iql_tau": 0.7, "normalize_reward": False, "value_layer_norm": False}})
    assert isinstance(idql.ValueNetwork(5).net[0], torch.nn.LayerNorm)  # IDQL's default: LayerNorm on V's input


# --- end to end -----------------------------------------------------------------------------------
def run_idql(data_dir, runs_dir, intent, *extra):
    return smoke_run(idql.train, idql.IDQLConfig, "idql", data_dir, runs_dir, intent, *SMALL, *extra)


def strip_speed(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rows]


def check_finished_run(runs_dir, intent: str, result: dict) -> dict:
    """final.json, metrics.csv and checkpoint of a finished 100-step smoke run; returns the checkpoint."""
    run_path = runs_dir / ENV / "idql" / intent / "seed0"
    assert json.loads((run_path / "final.json").read_text()) == result
    assert result["steps"] == 100 and np.isfinite(result["normalized_score"])
    rows = metrics_rows(runs_dir, "idql", intent)
    assert [int(r["step"]) for r in rows] == [50, 100]
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("actor_loss", "q_loss", "value_loss"))
    assert rows[0]["eval_normalized_score"] == "" and np.isfinite(float(rows[1]["eval_normalized_score"]))
    state = load_checkpoint(run_path / "checkpoint.pt")
    obs_dim = 4 if intent == "none" else 14
    assert state["obs_dim"] == obs_dim and state["algo"]["vf"]["net.1.0.weight"].shape == (256, obs_dim)
    assert state["algo"]["actor_lr_schedule"]["T_max"] == 100 and state["algo"]["total_it"] == 100
    return state


def test_idql_trains_with_the_managers_intents(data_dir, tmp_path, smoke_manager):
    result = run_idql(data_dir, tmp_path, "manager", "--manager", str(smoke_manager))
    check_finished_run(tmp_path, "manager", result)


def test_run_without_intents_repeats_exactly_and_resumes_bit_for_bit(data_dir, tmp_path):
    """Run b is a second run with the same seed, interrupted after 50 steps and resumed from its
    checkpoint: its metrics, score and weights equal run a's (same seed -> same numbers, and a
    resumed run equals an uninterrupted one)."""
    whole = run_idql(data_dir, tmp_path / "a", "none")
    state = check_finished_run(tmp_path / "a", "none", whole)
    assert run_idql(data_dir, tmp_path / "b", "none", "--chunk_steps", "50") is None
    assert strip_speed(metrics_rows(tmp_path / "b", "idql", "none")) == strip_speed(
        metrics_rows(tmp_path / "a", "idql", "none"))[:1]
    resumed = run_idql(data_dir, tmp_path / "b", "none", "--chunk_steps", "50")
    assert resumed["normalized_score"] == whole["normalized_score"]
    assert strip_speed(metrics_rows(tmp_path / "b", "idql", "none")) == strip_speed(
        metrics_rows(tmp_path / "a", "idql", "none"))
    other = load_checkpoint(tmp_path / "b" / ENV / "idql" / "none" / "seed0" / "checkpoint.pt")["algo"]
    for name in ("policy", "ema_policy", "critic_1", "target_critic_2", "vf"):
        assert all(torch.equal(state["algo"][name][k], other[name][k]) for k in other[name]), name
