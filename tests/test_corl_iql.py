"""The IQL worker: its loss pieces by hand, one update, the cosine schedule, CORL's presets, smoke
runs with every intent mode and an interrupted run equal to an uninterrupted one."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from corl import iql
from corl.shared import config as worker_config
from corl.shared.nets import DeterministicActor, GaussianActor
from worker_helpers import assert_presets, check_smoke_run, smoke_run
from worker_helpers import metrics_rows as worker_metrics_rows

ENV = "maze2d-umaze-v1"


def test_expectile_loss_by_hand_for_both_signs():
    # u = 2 (>= 0): weight tau = 0.7 -> 2.8; u = -1 (< 0): weight 0.3 -> 0.3; u = 0 -> 0
    assert iql.asymmetric_l2_loss(torch.tensor([2.0, -1.0]), 0.7).item() == pytest.approx((2.8 + 0.3) / 2)
    assert iql.asymmetric_l2_loss(torch.tensor([-2.0]), 0.9).item() == pytest.approx(0.1 * 4)
    assert iql.asymmetric_l2_loss(torch.tensor([0.0, 3.0]), 0.9).item() == pytest.approx(0.9 * 9 / 2)
    assert iql.asymmetric_l2_loss(torch.tensor([1.0, -1.0]), 0.5).item() == pytest.approx(0.5)  # tau 0.5: MSE / 2


def test_advantage_weights_by_hand_with_the_clamp():
    weights = iql.iql_weights(torch.tensor([0.0, 1.0, -1.0, 2.0]), beta=3.0)
    # exp([0, 3, -3, 6]) = [1, 20.09, 0.0498, 403.4] -> the last one clamped to EXP_ADV_MAX = 100
    np.testing.assert_allclose(weights.numpy(), [1.0, math.exp(3), math.exp(-3), 100.0], rtol=1e-6)
    assert iql.EXP_ADV_MAX == 100.0


def test_policy_and_q_losses_by_hand():
    assert iql.awr_policy_loss(torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])).item() == pytest.approx(0.5)
    # mean of MSE([1, 3] vs 2) = 1 and MSE([2, 2] vs 2) = 0
    assert iql.twin_q_loss(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 2.0]), torch.tensor([2.0, 2.0])).item() == 0.5
    actor = iql.make_actor(3, 2, deterministic=True, dropout=None)
    with torch.no_grad():
        actor.net[-2].weight.zero_()
        actor.net[-2].bias.copy_(torch.tensor([0.0, 10.0]))  # tanh -> (0, ~1)
    losses = iql.bc_losses(actor, torch.zeros(2, 3), torch.tensor([[0.5, 1.0], [-1.0, 0.0]]))
    assert losses.tolist() == pytest.approx([0.25, 1.0 + math.tanh(10.0) ** 2], rel=1e-5)  # summed over dims
    gaussian = iql.make_actor(3, 2, deterministic=False, dropout=None)
    assert isinstance(gaussian, GaussianActor) and isinstance(gaussian.net[-1], torch.nn.Tanh)  # tanh mean
    states, actions = torch.randn(4, 3), torch.rand(4, 2) * 2 - 1
    torch.testing.assert_close(iql.bc_losses(gaussian, states, actions), -gaussian.log_prob(states, actions))


def tiny_iql(seed: int = 0, deterministic: bool = False, dropout=None, max_steps: int = 100, beta: float = 3.0
             ) -> iql.IQL:
    torch.manual_seed(seed)
    actor = (DeterministicActor(3, 2, 1.0, hidden_dim=16, dropout=dropout) if deterministic
             else GaussianActor(3, 2, 16, tanh_mean=True, dropout=dropout))
    return iql.IQL(actor, iql.TwinQ(3, 2, 16), iql.ValueFunction(3, 16), max_action=1.0, max_steps=max_steps,
                   vf_lr=1e-2, qf_lr=1e-2, actor_lr=1e-2, iql_tau=0.7, beta=beta, discount=0.99, tau=0.1)


def tiny_batch(n: int = 32, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, generator=g), torch.rand(n, 2, generator=g) * 2 - 1, torch.randn(n, 1, generator=g),
            torch.randn(n, 3, generator=g), (torch.rand(n, 1, generator=g) < 0.2).float()]


@pytest.mark.parametrize("deterministic", [False, True])
def test_one_update_changes_parameters_and_moves_the_target_by_tau(deterministic):
    algo = tiny_iql(deterministic=deterministic, dropout=0.1)
    before = {name: [p.detach().clone() for p in getattr(algo, name).parameters()]
              for name in ("actor", "qf", "vf", "q_target")}
    metrics = algo.update(tiny_batch())
    assert set(metrics) == {"value_loss", "q_loss", "actor_loss"}
    assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in metrics.values())
    for name in ("actor", "qf", "vf"):
        assert all(not torch.equal(a, p) for a, p in zip(before[name], getattr(algo, name).parameters())), name
    for old, q, target in zip(before["q_target"], algo.qf.parameters(), algo.q_target.parameters()):
        torch.testing.assert_close(target, 0.9 * old + 0.1 * q)  # tau 0.1, towards the updated Q
    assert algo.total_it == 1 and algo.actor.training


@pytest.mark.parametrize("deterministic", [False, True])
def test_learning_progress_on_a_fixed_terminal_batch(deterministic):
    """With every transition terminal Q regresses onto r and V follows it; with beta 0 the weights
    are 1 and the actor is plain behaviour cloning, so its loss must fall."""
    batch = tiny_batch(64)
    batch[4] = torch.ones_like(batch[4])
    algo = tiny_iql(deterministic=deterministic, beta=0.0, max_steps=300)
    rewards = batch[2].squeeze(-1)
    with torch.no_grad():
        v_error_before = (algo.vf(batch[0]) - rewards).abs().mean()
    history = [algo.update(batch) for _ in range(300)]
    first, last = history[0], history[-1]
    assert last["q_loss"] < 0.01 * first["q_loss"]
    assert last["actor_loss"] < first["actor_loss"] - (0.1 if deterministic else 2.0)
    with torch.no_grad():
        assert (algo.q_target(batch[0], batch[1]) - rewards).abs().mean() < 0.05
        assert (algo.vf(batch[0]) - rewards).abs().mean() < 0.5 * v_error_before


def test_actor_learning_rate_follows_the_cosine_schedule():
    algo = tiny_iql(max_steps=4)
    lrs = []
    for _ in range(4):
        algo.update(tiny_batch())
        lrs.append(algo.actor_optimizer.param_groups[0]["lr"])
    expected = [1e-2 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(1, 5)]  # 8.5e-3, 5e-3, 1.5e-3, 0
    assert lrs == pytest.approx(expected, abs=1e-12)
    assert algo.q_optimizer.param_groups[0]["lr"] == 1e-2  # only the actor is annealed


@pytest.mark.parametrize("deterministic", [False, True])
def test_act_is_deterministic_with_dropout_off(deterministic):
    algo = tiny_iql(deterministic=deterministic, dropout=0.5)
    obs = torch.randn(8, 3)
    first = algo.act(obs)
    assert torch.equal(first, algo.act(obs)) and algo.actor.training  # back in training mode
    algo.actor.eval()
    mean = algo.actor(obs) if deterministic else algo.actor(obs).mean
    torch.testing.assert_close(first, mean.clamp(-1, 1))


def test_state_dict_round_trip_continues_identically():
    algo, other = tiny_iql(0, dropout=0.1), tiny_iql(5, dropout=0.1)
    for _ in range(3):
        algo.update(tiny_batch())
    other.load_state_dict(copy.deepcopy(algo.state_dict()))  # (a loaded optimiser state shares tensors)
    assert other.total_it == 3 and other.actor_lr_schedule.last_epoch == 3
    batch = tiny_batch(seed=7)
    torch.manual_seed(3)
    expected = algo.update(batch)
    torch.manual_seed(3)
    got = other.update(batch)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert all(torch.equal(a, b) for a, b in zip(algo.q_target.parameters(), other.q_target.parameters()))


def test_corl_presets_load():
    cfg = worker_config.parse_worker_config(iql.IQLConfig, "iql", ["--env", ENV])
    assert (cfg.algo, cfg.beta, cfg.iql_tau, cfg.iql_deterministic, cfg.normalize, cfg.normalize_reward) == (
        "iql", 3.0, 0.7, False, True, False)
    assert (cfg.discount, cfg.tau, cfg.batch_size, cfg.vf_lr, cfg.qf_lr, cfg.actor_lr, cfg.actor_dropout) == (
        0.99, 0.005, 256, 3e-4, 3e-4, 3e-4, None)
    cfg = worker_config.parse_worker_config(iql.IQLConfig, "iql", ["--env", ENV, "--actor_dropout", "0.1",
                                                                   "--iql_deterministic", "true"])
    assert cfg.actor_dropout == 0.1 and cfg.iql_deterministic
    expected = {"antmaze": {"beta": 10.0, "iql_tau": 0.9, "normalize_reward": True},
                "halfcheetah": {"beta": 3.0, "iql_tau": 0.7, "normalize_reward": False},
                "maze2d": {"beta": 3.0, "iql_tau": 0.7, "normalize_reward": False}}
    assert_presets("iql", iql.IQLConfig, expected)


# --- end to end ---------------------------------------------------------------------------------
def run_iql(data_dir, runs_dir, intent, *extra):
    return smoke_run(iql.train, iql.IQLConfig, "iql", data_dir, runs_dir, intent, *extra)


def metrics_rows(runs_dir, intent) -> list[dict[str, str]]:
    return worker_metrics_rows(runs_dir, "iql", intent)


@pytest.mark.parametrize("intent", ["none", "manager"])  # random: the interrupted-run test below
def test_iql_trains_with_each_intent(data_dir, tmp_path, smoke_manager, intent):
    extra = ["--manager", str(smoke_manager)] if intent == "manager" else []
    result = run_iql(data_dir, tmp_path, intent, *extra)
    rows, state, obs_dim = check_smoke_run(tmp_path, "iql", intent, result, ("q_loss", "value_loss", "actor_loss"))
    assert rows[1]["eval_normalized_score"] != "" and rows[0]["eval_normalized_score"] == ""
    assert state["algo"]["vf"]["net.0.weight"].shape[1] == obs_dim
    schedule = state["algo"]["actor_lr_schedule"]
    assert schedule["T_max"] == 200 and schedule["last_epoch"] == 200  # the smoke profile's resolved steps


def test_interrupted_run_equals_uninterrupted(data_dir, tmp_path):
    extra = ["--actor_dropout", "0.1"]  # dropout draws from the global RNG, which the checkpoint carries
    whole = run_iql(data_dir, tmp_path / "a", "random", *extra)
    assert run_iql(data_dir, tmp_path / "b", "random", "--chunk_steps", "100", *extra) is None
    resumed = run_iql(data_dir, tmp_path / "b", "random", "--chunk_steps", "100", *extra)
    assert resumed["normalized_score"] == whole["normalized_score"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rows]  # noqa: E731
    assert strip(metrics_rows(tmp_path / "a", "random")) == strip(metrics_rows(tmp_path / "b", "random"))
