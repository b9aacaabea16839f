"""The AWAC worker: its loss pieces by hand, one update, CORL's presets, smoke runs with every
intent mode and an interrupted run equal to an uninterrupted one."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from corl import awac
from corl.shared import config as worker_config
from corl.shared.nets import GaussianActor, QNetwork
from worker_helpers import assert_presets, check_smoke_run, smoke_run
from worker_helpers import metrics_rows as worker_metrics_rows

ENV = "maze2d-umaze-v1"


def test_advantage_weights_by_hand_with_the_clamp():
    adv = torch.tensor([0.0, 0.1, -0.2, 1.0])
    weights = awac.awac_weights(adv, awac_lambda=0.1, exp_adv_max=100.0)
    # exp([0, 1, -2, 10]) = [1, e, e^-2, 22026.5] -> the last one clamped to 100
    np.testing.assert_allclose(weights.numpy(), [1.0, math.e, math.exp(-2), 100.0], rtol=1e-6)
    assert awac.awac_weights(torch.tensor([3.0]), 1.0, 5.0).item() == 5.0  # e^3 = 20.1 > 5


def test_actor_loss_td_target_and_critic_loss_by_hand():
    log_prob, weights = torch.tensor([-1.0, -2.0, 0.5]), torch.tensor([1.0, 0.5, 2.0])
    # mean(1 * 1, 2 * 0.5, -0.5 * 2) = (1 + 1 - 1) / 3
    assert awac.awac_actor_loss(log_prob, weights).item() == pytest.approx(1 / 3)
    target = awac.td_target(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([10.0, 10.0]), 0.9)
    assert target.tolist() == pytest.approx([10.0, 1.0])  # the terminal row does not bootstrap
    # MSE([1, 3] vs [2, 2]) = 1, MSE([2, 2] vs [2, 2]) = 0
    loss = awac.twin_critic_loss(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]), torch.tensor([2.0, 2.0]))
    assert loss.item() == pytest.approx(1.0)


def test_gaussian_actor_log_prob_by_hand_and_log_std_clamp():
    actor = GaussianActor(3, 2, hidden_dim=8, n_hidden=3)
    with torch.no_grad():
        actor.net[-1].weight.zero_()
        actor.net[-1].bias.copy_(torch.tensor([0.5, -0.5]))  # mean (0.5, -0.5) for every state
        actor.log_std.copy_(torch.tensor([0.0, 5.0]))  # the second is clamped to 2
    action = torch.tensor([[1.5, -0.5]])
    std2 = math.exp(2.0)
    expected = (-0.5 * 1.0 - 0.5 * math.log(2 * math.pi)) + (-0.0 - 2.0 - 0.5 * math.log(2 * math.pi))
    assert actor.log_prob(torch.zeros(1, 3), action).item() == pytest.approx(expected, rel=1e-6)
    assert actor(torch.zeros(1, 3)).stddev[0].tolist() == pytest.approx([1.0, std2])
    assert sum(isinstance(m, torch.nn.Linear) for m in actor.net) == 4  # 3 hidden layers, linear mean


def tiny_awac(seed: int = 0, **kwargs) -> awac.AWAC:
    torch.manual_seed(seed)
    nets = (GaussianActor(3, 2, 16, n_hidden=3), QNetwork(3, 2, 16, n_hidden=3), QNetwork(3, 2, 16, n_hidden=3))
    options = {"learning_rate": 1e-2, "gamma": 0.99, "tau": 0.1, "awac_lambda": 1.0, "exp_adv_max": 100.0, **kwargs}
    return awac.AWAC(*nets, max_action=1.0, **options)


def tiny_batch(n: int = 32, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, generator=g), torch.rand(n, 2, generator=g) * 2 - 1, torch.randn(n, 1, generator=g),
            torch.randn(n, 3, generator=g), (torch.rand(n, 1, generator=g) < 0.2).float()]


def test_one_update_changes_parameters_and_moves_targets_by_tau():
    algo = tiny_awac()
    nets = ("actor", "critic_1", "critic_2", "target_critic_1", "target_critic_2")
    before = {name: [p.detach().clone() for p in getattr(algo, name).parameters()] for name in nets}
    metrics = algo.update(tiny_batch())
    assert set(metrics) == {"critic_loss", "actor_loss"}
    assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in metrics.values())
    for name in ("actor", "critic_1", "critic_2"):
        assert all(not torch.equal(a, p) for a, p in zip(before[name], getattr(algo, name).parameters())), name
    for i in (1, 2):
        old, critic = before[f"target_critic_{i}"], list(getattr(algo, f"critic_{i}").parameters())
        for o, c, t in zip(old, critic, getattr(algo, f"target_critic_{i}").parameters()):
            torch.testing.assert_close(t, 0.9 * o + 0.1 * c)  # tau 0.1, towards the updated critic
    assert not any(p.requires_grad for p in algo.target_critic_1.parameters())


def test_learning_progress_on_a_fixed_terminal_batch():
    """With every transition terminal the critics regress onto r; with a huge awac_lambda the weights
    are ~1 and the actor is plain maximum likelihood, so both losses must fall."""
    batch = tiny_batch(64)
    batch[4] = torch.ones_like(batch[4])
    algo = tiny_awac(awac_lambda=1e6)
    history = [algo.update(batch) for _ in range(300)]
    first, last = history[0], history[-1]
    assert last["critic_loss"] < 0.01 * first["critic_loss"]
    assert last["actor_loss"] < first["actor_loss"] - 2.0  # NLL 2.2 -> about -1.1
    with torch.no_grad():
        assert (algo.critic_1(batch[0], batch[1]) - batch[2].squeeze(-1)).abs().mean() < 0.05


def test_act_is_the_mean_and_state_dict_round_trips():
    algo, other = tiny_awac(0), tiny_awac(5)
    obs = torch.randn(4, 3)
    assert torch.equal(algo.act(obs), algo.act(obs))
    torch.testing.assert_close(algo.act(obs), algo.actor.net(obs))
    for _ in range(2):
        algo.update(tiny_batch())
    other.load_state_dict(copy.deepcopy(algo.state_dict()))  # (a loaded optimiser state shares tensors)
    batch = tiny_batch(seed=7)
    torch.manual_seed(3)
    expected = algo.update(batch)
    torch.manual_seed(3)
    got = other.update(batch)
    assert all(torch.equal(expected[k], got[k]) for k in expected)  # optimisers and targets restored too
    torch.testing.assert_close(other.act(obs), algo.act(obs), rtol=0, atol=0)


def test_corl_presets_load():
    cfg = worker_config.parse_worker_config(awac.AWACConfig, "awac", ["--env", ENV])
    assert (cfg.algo, cfg.awac_lambda, cfg.normalize_reward) == ("awac", 0.1, False)
    assert (cfg.learning_rate, cfg.gamma, cfg.tau, cfg.hidden_dim, cfg.batch_size, cfg.exp_adv_max) == (
        3e-4, 0.99, 5e-3, 256, 256, 100.0)
    flags = ["--env", ENV, "--awac_lambda", "2"]
    assert worker_config.parse_worker_config(awac.AWACConfig, "awac", flags).awac_lambda == 2  # the flag wins
    expected = {"antmaze": {"awac_lambda": 0.1, "normalize_reward": True},
                "halfcheetah": {"awac_lambda": 0.3333, "normalize_reward": False},
                "maze2d": {"awac_lambda": 0.1, "normalize_reward": False}}
    assert_presets("awac", awac.AWACConfig, expected)


# --- end to end ---------------------------------------------------------------------------------
def run_awac(data_dir, runs_dir, intent, *extra):
    return smoke_run(awac.train, awac.AWACConfig, "awac", data_dir, runs_dir, intent, *extra)


def metrics_rows(runs_dir, intent) -> list[dict[str, str]]:
    return worker_metrics_rows(runs_dir, "awac", intent)


@pytest.mark.parametrize("intent", ["none", "manager"])  # random: the interrupted-run test below
def test_awac_trains_with_each_intent(data_dir, tmp_path, smoke_manager, intent):
    extra = ["--manager", str(smoke_manager)] if intent == "manager" else []
    result = run_awac(data_dir, tmp_path, intent, *extra)
    rows, state, obs_dim = check_smoke_run(tmp_path, "awac", intent, result, ("critic_loss", "actor_loss"))
    assert rows[1]["eval_normalized_score"] != "" and rows[0]["eval_normalized_score"] == ""
    assert state["algo"]["actor"]["net.0.weight"].shape[1] == obs_dim


def test_interrupted_run_equals_uninterrupted(data_dir, tmp_path):
    whole = run_awac(data_dir, tmp_path / "a", "random")
    assert run_awac(data_dir, tmp_path / "b", "random", "--chunk_steps", "100") is None
    resumed = run_awac(data_dir, tmp_path / "b", "random", "--chunk_steps", "100")
    assert resumed["normalized_score"] == whole["normalized_score"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rows]  # noqa: E731
    assert strip(metrics_rows(tmp_path / "a", "random")) == strip(metrics_rows(tmp_path / "b", "random"))
