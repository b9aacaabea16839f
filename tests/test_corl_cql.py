"""The CQL worker: the tanh-Gaussian policy, the conservative term, the Lagrange multiplier and the
max-target backup by hand, one update, CORL's presets and init, smoke runs with every intent mode
and an interrupted run equal to an uninterrupted one."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from common.checkpoint import load_checkpoint
from corl import cql
from corl.shared import config as worker_config
from worker_helpers import assert_presets, check_smoke_run, smoke_run
from worker_helpers import metrics_rows as worker_metrics_rows

ENV = "maze2d-umaze-v1"


def lse(values, temp: float = 1.0) -> float:
    return temp * math.log(sum(math.exp(v / temp) for v in values))


# --- the conservative term ----------------------------------------------------------------------
Q_RAND = torch.tensor([[1.0, 2.0], [0.0, -1.0]])  # (B=2, N=2)
Q_DATA = torch.tensor([0.5, 2.0])
Q_NEXT = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
Q_CUR = torch.tensor([[3.0, 1.0], [-2.0, 0.0]])
NEXT_LOG_PI = torch.tensor([[-1.0, 0.0], [0.5, 2.0]])
CUR_LOG_PI = torch.tensor([[0.5, 0.5], [-3.0, 1.0]])


def test_conservative_term_without_importance_sampling_by_hand():
    sampled = cql.cql_sampled_q(Q_RAND, Q_DATA, Q_NEXT, Q_CUR, NEXT_LOG_PI, CUR_LOG_PI, action_dim=2,
                                importance_sample=False)
    # [Q_rand, Q_data, Q_next, Q_cur]: 3N + 1 = 7 terms per state
    assert sampled.tolist() == [[1.0, 2.0, 0.5, 0.0, 1.0, 3.0, 1.0], [0.0, -1.0, 2.0, 1.0, 1.0, -2.0, 0.0]]
    rows = [[1, 2, 0.5, 0, 1, 3, 1], [0, -1, 2, 1, 1, -2, 0]]
    expected = ((lse(rows[0]) - 0.5) + (lse(rows[1]) - 2.0)) / 2  # = (3.1451 + 0.7297) / 2
    diff = cql.conservative_diff(sampled, Q_DATA, temp=1.0, clip_min=-math.inf, clip_max=math.inf)
    assert diff.item() == pytest.approx(expected, rel=1e-6)
    expected_t2 = ((lse(rows[0], 2.0) - 0.5) + (lse(rows[1], 2.0) - 2.0)) / 2  # temp * lse(x / temp)
    assert cql.conservative_diff(sampled, Q_DATA, 2.0, -math.inf, math.inf).item() == pytest.approx(expected_t2)
    assert expected == pytest.approx((3.1451 + 0.7297) / 2, abs=1e-4)
    # per-state clipping before the mean: state gaps 3.1451 and 0.7297 -> clipped to [1, 2]
    assert cql.conservative_diff(sampled, Q_DATA, 1.0, 1.0, 2.0).item() == pytest.approx((2.0 + 1.0) / 2)


def test_conservative_term_with_importance_sampling_by_hand():
    sampled = cql.cql_sampled_q(Q_RAND, Q_DATA, Q_NEXT, Q_CUR, NEXT_LOG_PI, CUR_LOG_PI, action_dim=2,
                                importance_sample=True)
    log4 = math.log(4.0)  # uniform on [-1, 1]^2 has density 1/4: Q_rand - log(1/4)
    rows = [[1 + log4, 2 + log4, 0 - (-1), 1 - 0, 3 - 0.5, 1 - 0.5],
            [0 + log4, -1 + log4, 1 - 0.5, 1 - 2, -2 - (-3), 0 - 1]]  # 3N = 6 terms, no data Q
    np.testing.assert_allclose(sampled.numpy(), rows, rtol=1e-6)
    expected = ((lse(rows[0]) - 0.5) + (lse(rows[1]) - 2.0)) / 2
    diff = cql.conservative_diff(sampled, Q_DATA, 1.0, -math.inf, math.inf)
    assert diff.item() == pytest.approx(expected, rel=1e-6)


def test_penalty_and_lagrange_multiplier_loss_and_its_gradient_sign():
    diff = torch.tensor(3.0)
    assert cql.conservative_penalty(diff, cql_alpha=10.0).item() == 30.0  # plain CQL: cql_alpha * diff
    assert cql.conservative_penalty(diff, 5.0, torch.tensor(2.0), target_action_gap=0.8).item() == pytest.approx(
        2.0 * 5.0 * 2.2)
    assert cql.lagrange_multiplier(torch.tensor(20.0)).item() == cql.ALPHA_PRIME_MAX  # exp(20) clamped at 1e6
    # alpha' = exp(0) = 1, gaps above the target (7 - 5, 6 - 5): loss -(1 * 5 * 2 + 1 * 5 * 1) / 2 = -7.5
    for diffs, expected_loss in (((7.0, 6.0), -7.5), ((3.0, 4.0), 7.5)):
        log_alpha_prime = torch.nn.Parameter(torch.tensor(0.0))
        loss = cql.alpha_prime_loss(log_alpha_prime, torch.tensor(diffs[0]), torch.tensor(diffs[1]),
                                    cql_alpha=5.0, target_action_gap=5.0)
        assert loss.item() == pytest.approx(expected_loss)
        loss.backward()
        assert log_alpha_prime.grad.item() == pytest.approx(expected_loss)  # d alpha' / d log alpha' = alpha' = 1
        torch.optim.Adam([log_alpha_prime], lr=0.1).step()
        grows = diffs[0] + diffs[1] > 10.0  # the gap exceeds the target: alpha' must grow
        assert (log_alpha_prime.item() > 0) == grows
    # the diffs are detached: the multiplier's loss gives the critics no gradient
    diff = torch.tensor(7.0, requires_grad=True)
    cql.alpha_prime_loss(torch.nn.Parameter(torch.tensor(0.0)), diff, diff, 5.0, 5.0).backward()
    assert diff.grad is None


def test_max_target_backup_picks_the_max_over_sampled_next_actions():
    target_q = torch.tensor([[1.0, 5.0, 3.0], [2.0, -1.0, 0.0]])  # (B=2, N=3)
    next_log_pi = torch.tensor([[-0.1, -0.2, -0.3], [-1.0, -2.0, -3.0]])
    best_q, best_log_pi = cql.max_target_backup(target_q, next_log_pi)
    assert best_q.tolist() == [5.0, 2.0]
    assert best_log_pi.tolist() == pytest.approx([-0.2, -1.0])  # the log pi of the chosen action


def test_entropy_temperature_and_policy_losses_by_hand():
    for log_pi, grows in ((torch.tensor([3.0, 5.0]), True), (torch.tensor([-1.0, -3.0]), False)):
        log_alpha = torch.nn.Parameter(torch.tensor(0.0))
        cql.entropy_alpha_loss(log_alpha, log_pi, target_entropy=-2.0).backward()
        # d/d log_alpha = -mean(log pi + target_entropy): [3, 5] -> -2 (entropy too low: alpha grows)
        assert log_alpha.grad.item() == pytest.approx(-(log_pi - 2.0).mean().item())
        assert (log_alpha.grad.item() < 0) == grows
    loss = cql.sac_policy_loss(torch.tensor(0.5), torch.tensor([-1.0, 2.0]), torch.tensor([3.0, 1.0]))
    assert loss.item() == pytest.approx(((-0.5 - 3.0) + (1.0 - 1.0)) / 2)


def test_cql_reward_handling_differs_from_the_shared_one_only_where_corl_does():
    rewards = np.array([1, 1, 0, 0, 5, 2, 2], np.float32)
    data = {"rewards": rewards, "terminals": np.array([0, 1, 0, 0, 1, 0, 1], bool)}
    np.testing.assert_allclose(cql.cql_modify_reward(data, "antmaze-umaze-v2", 10.0, -5.0)["rewards"],
                               rewards * 10 - 5)  # CQL: r * 10 - 5, not r - 1
    np.testing.assert_allclose(cql.cql_modify_reward(data, ENV, 1.0, 0.0)["rewards"], rewards)
    # locomotion: returns 2, 5, 4 -> x 1000 / 3, then the affine map
    np.testing.assert_allclose(cql.cql_modify_reward(data, "halfcheetah-medium-v2", 5.0, -1.0)["rewards"],
                               rewards * 1000 / 3 * 5 - 1, rtol=1e-6)
    assert data["rewards"][0] == 1  # the input is not modified


# --- networks -----------------------------------------------------------------------------------
def test_tanh_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    mean, log_std = torch.randn(5, 3), torch.randn(5, 3) * 0.5
    pre_tanh = mean + log_std.exp() * torch.randn(5, 3)
    dist = TransformedDistribution(Normal(mean, log_std.exp()), TanhTransform())
    expected = dist.log_prob(torch.tanh(pre_tanh)).sum(-1)
    torch.testing.assert_close(cql.tanh_gaussian_log_prob(pre_tanh, mean, log_std), expected, rtol=1e-4, atol=1e-4)


def test_policy_samples_shapes_bounds_and_deterministic_action():
    torch.manual_seed(0)
    policy = cql.TanhGaussianPolicy(3, 2, max_action=1.0)
    obs = torch.randn(4, 3)
    actions, log_pi = policy(obs)
    assert actions.shape == (4, 2) and log_pi.shape == (4,) and actions.abs().max() < 1
    actions, log_pi = policy(obs, repeat=5)
    assert actions.shape == (4, 5, 2) and log_pi.shape == (4, 5)
    torch.testing.assert_close(policy.log_prob(obs, actions), log_pi, rtol=1e-4, atol=1e-4)
    assert torch.isfinite(policy.log_prob(obs, torch.tensor([[1.0, -1.0]] * 4))).all()  # actions on the bound
    scaled = cql.TanhGaussianPolicy(3, 2, max_action=2.0)
    scaled.load_state_dict(policy.state_dict())
    torch.manual_seed(1)
    actions, log_pi = scaled(obs)
    torch.testing.assert_close(scaled.log_prob(obs, actions), log_pi, rtol=1e-4, atol=1e-4)  # a / max_action
    mean = policy.base_network(obs)[:, :2]
    torch.testing.assert_close(policy(obs, deterministic=True)[0], torch.tanh(mean))
    # the log-std is (multiplier * raw + offset) with two learnable scalars, offset -1 at the start
    names = {name for name, _ in policy.named_parameters()}
    assert {"log_std_multiplier", "log_std_offset"} <= names and policy.log_std_offset.item() == -1.0


def test_corl_initialisation():
    torch.manual_seed(0)
    critic = cql.make_critic(5, 2, n_hidden=5, orthogonal_init=True)
    linears = [m for m in critic.net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 6  # 5 hidden layers
    first = linears[0].weight  # (256, 7): orthogonal columns with gain sqrt(2)
    torch.testing.assert_close(first.T @ first, 2 * torch.eye(7), atol=1e-4, rtol=0)
    torch.testing.assert_close(linears[1].weight @ linears[1].weight.T, 2 * torch.eye(256), atol=1e-4, rtol=0)
    assert linears[-1].weight.norm().item() == pytest.approx(1e-2, rel=1e-4)  # (1, 256) orthogonal, gain 1e-2
    assert all(torch.count_nonzero(m.bias) == 0 for m in linears)
    plain = cql.make_critic(5, 2, n_hidden=3, orthogonal_init=False)
    plain_linears = [m for m in plain.net if isinstance(m, torch.nn.Linear)]
    assert torch.count_nonzero(plain_linears[0].bias) > 0  # PyTorch's default for the hidden layers
    bound = 1e-2 * math.sqrt(6 / (256 + 1))  # xavier-uniform, gain 1e-2
    assert plain_linears[-1].weight.abs().max() <= bound and torch.count_nonzero(plain_linears[-1].bias) == 0
    policy = cql.TanhGaussianPolicy(5, 2, 1.0)  # never orthogonal: default hidden, xavier 1e-2 last layer
    last = policy.base_network[-1]
    assert last.weight.shape == (4, 256) and last.weight.abs().max() <= 1e-2 * math.sqrt(6 / (256 + 4))
    assert torch.count_nonzero(policy.base_network[0].bias) > 0 and len(policy.base_network) == 7  # 3 hidden


# --- the algorithm ------------------------------------------------------------------------------
def tiny_cql(seed: int = 0, **kwargs) -> cql.ContinuousCQL:
    torch.manual_seed(seed)
    options = {"policy_lr": 1e-3, "qf_lr": 1e-2, "cql_n_actions": 4, "soft_target_update_rate": 0.1, **kwargs}
    return cql.ContinuousCQL(cql.TanhGaussianPolicy(3, 2, 1.0), cql.make_critic(3, 2, 2, True),
                             cql.make_critic(3, 2, 2, True), target_entropy=-2.0, **options)


def tiny_batch(n: int = 32, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, generator=g), torch.rand(n, 2, generator=g) * 1.8 - 0.9, torch.randn(n, 1, generator=g),
            torch.randn(n, 3, generator=g), (torch.rand(n, 1, generator=g) < 0.2).float()]


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


METRICS = {"policy_loss", "alpha_loss", "alpha", "log_pi", "qf1_loss", "qf2_loss", "cql_min_qf1_loss",
           "cql_min_qf2_loss", "cql_qf1_diff", "cql_qf2_diff", "alpha_prime", "alpha_prime_loss", "average_qf1",
           "average_target_q"}


@pytest.mark.parametrize("lagrange", [False, True])
def test_one_update_steps_every_part(lagrange):
    algo = tiny_cql(cql_lagrange=lagrange, cql_target_action_gap=5.0, target_update_period=2,
                    cql_max_target_backup=lagrange, backup_entropy=lagrange)
    before = {name: params(getattr(algo, name)) for name in ("actor", "critic_1", "critic_2", "target_critic_1")}
    metrics = algo.update(tiny_batch())
    assert set(metrics) == METRICS
    assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in metrics.values())
    for name in ("actor", "critic_1", "critic_2"):
        assert all(not torch.equal(a, b) for a, b in zip(before[name], getattr(algo, name).parameters())), name
    assert algo.log_alpha.item() != 0.0 and metrics["alpha"].item() == 1.0  # alpha of the loss: before its step
    # target_update_period 2: the targets wait for the second update, then move by tau
    assert all(torch.equal(a, b) for a, b in zip(before["target_critic_1"], algo.target_critic_1.parameters()))
    critic_now = params(algo.critic_1)
    algo.update(tiny_batch(seed=2))
    for old, new, target in zip(before["target_critic_1"], algo.critic_1.parameters(),
                                algo.target_critic_1.parameters()):
        torch.testing.assert_close(target, 0.9 * old + 0.1 * new)
    assert not all(torch.equal(a, b) for a, b in zip(critic_now, algo.critic_1.parameters()))
    if lagrange:  # alpha' = exp(1) at the start; the gap (~log 12 < 5) is below the target: alpha' shrinks
        assert metrics["alpha_prime"].item() == pytest.approx(math.e)
        assert metrics["cql_qf1_diff"].item() < 5.0 and algo.log_alpha_prime.item() < 1.0
        expected = metrics["alpha_prime"] * 10.0 * (metrics["cql_qf1_diff"] - 5.0)
        torch.testing.assert_close(metrics["cql_min_qf1_loss"], expected)
    else:
        assert metrics["alpha_prime"].item() == 0.0 and algo.log_alpha_prime.item() == 1.0
        torch.testing.assert_close(metrics["cql_min_qf1_loss"], 10.0 * metrics["cql_qf1_diff"])


def test_bc_steps_switch_the_policy_loss_by_the_step_counter():
    algo = tiny_cql(bc_steps=2)
    calls = []
    log_prob = algo.actor.log_prob

    def spy(observations, actions):
        calls.append((algo.total_it, torch.equal(actions, batch[1])))
        return log_prob(observations, actions)

    algo.actor.log_prob = spy
    batch = tiny_batch()
    for _ in range(4):
        algo.update(batch)
    # BC on the dataset's actions for updates 1..bc_steps (total_it <= bc_steps, as CORL), then Q
    assert calls == [(1, True), (2, True)]


def test_without_entropy_tuning_alpha_is_the_multiplier():
    algo = tiny_cql(use_automatic_entropy_tuning=False, alpha_multiplier=0.3)
    metrics = algo.update(tiny_batch())
    assert metrics["alpha"].item() == pytest.approx(0.3) and metrics["alpha_loss"].item() == 0.0
    assert algo.log_alpha.item() == 0.0


def test_learning_progress_on_a_fixed_terminal_batch():
    """All transitions terminal: the TD error falls and the conservative term pushes the Q of
    sampled actions below the data's (the gap falls)."""
    batch = tiny_batch(64)
    batch[4] = torch.ones_like(batch[4])
    algo = tiny_cql(cql_alpha=1.0)
    history = [algo.update(batch) for _ in range(150)]
    first, last = history[0], history[-1]
    assert last["cql_qf1_diff"] < first["cql_qf1_diff"] - 1.0
    assert last["qf1_loss"] < 0.5 * first["qf1_loss"]


def test_act_is_deterministic_tanh_of_the_mean():
    algo = tiny_cql()
    obs = torch.randn(8, 3)
    first = algo.act(obs)
    assert torch.equal(first, algo.act(obs))
    torch.testing.assert_close(first, torch.tanh(algo.actor.base_network(obs)[:, :2]).detach())


def test_state_dict_round_trip_continues_identically():
    algo, other = tiny_cql(0, cql_lagrange=True), tiny_cql(5, cql_lagrange=True)
    for _ in range(3):
        algo.update(tiny_batch())
    other.load_state_dict(copy.deepcopy(algo.state_dict()))  # (a loaded optimiser state shares tensors)
    assert other.total_it == 3 and other.log_alpha.item() == algo.log_alpha.item()
    assert other.alpha_prime_optimizer.param_groups[0]["params"][0] is other.log_alpha_prime  # loaded in place
    for seed in (3, 4):
        batch = tiny_batch(seed=7)
        torch.manual_seed(seed)
        expected = algo.update(batch)
        torch.manual_seed(seed)
        got = other.update(batch)
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert torch.equal(algo.log_alpha_prime, other.log_alpha_prime) and torch.equal(algo.log_alpha, other.log_alpha)
    assert all(torch.equal(a, b) for a, b in zip(algo.target_critic_2.parameters(), other.target_critic_2.parameters()))


def test_corl_presets_load():
    cfg = worker_config.parse_worker_config(cql.CQLConfig, "cql", ["--env", ENV])
    assert (cfg.algo, cfg.cql_lagrange, cfg.cql_target_action_gap, cfg.cql_alpha, cfg.cql_max_target_backup) == (
        "cql", True, 5.0, 10.0, False)
    assert (cfg.policy_lr, cfg.qf_lr, cfg.q_n_hidden_layers, cfg.cql_n_actions, cfg.cql_importance_sample) == (
        3e-5, 3e-4, 3, 10, True)
    assert (cfg.normalize, cfg.normalize_reward, cfg.orthogonal_init, cfg.bc_steps, cfg.cql_temp) == (
        True, False, True, 0, 1.0)
    assert (cfg.cql_clip_diff_min, cfg.cql_clip_diff_max) == (-math.inf, math.inf)
    cfg = worker_config.parse_worker_config(cql.CQLConfig, "cql", ["--env", ENV, "--cql_clip_diff_min", "-200",
                                                                   "--cql_lagrange", "false"])
    assert cfg.cql_clip_diff_min == -200.0 and not cfg.cql_lagrange
    expected = {"antmaze": {"policy_lr": 1e-4, "cql_alpha": 5.0, "cql_lagrange": True, "cql_target_action_gap": 0.8,
                            "cql_max_target_backup": True, "cql_clip_diff_min": -200.0, "cql_clip_diff_max": math.inf,
                            "q_n_hidden_layers": 5, "normalize": False, "normalize_reward": True,
                            "reward_scale": 10.0, "reward_bias": -5.0},
                "halfcheetah": {"cql_lagrange": False, "cql_alpha": 10.0, "policy_lr": 3e-5, "normalize": True},
                "maze2d": {"cql_lagrange": True, "cql_target_action_gap": 5.0, "normalize_reward": False}}
    assert_presets("cql", cql.CQLConfig, expected)


# --- end to end ---------------------------------------------------------------------------------
def run_cql(data_dir, runs_dir, intent, *extra):
    # batch 32 keeps the smoke runs fast on a CPU (CQL evaluates its critics on 3 x 10 sampled actions)
    return smoke_run(cql.train, cql.CQLConfig, "cql", data_dir, runs_dir, intent, "--batch_size", "32", *extra)


def metrics_rows(runs_dir, intent) -> list[dict[str, str]]:
    return worker_metrics_rows(runs_dir, "cql", intent)


@pytest.mark.parametrize("intent", ["none", "manager"])  # random: the interrupted-run test below
def test_cql_trains_with_each_intent(data_dir, tmp_path, smoke_manager, intent):
    extra = ["--manager", str(smoke_manager)] if intent == "manager" else []
    result = run_cql(data_dir, tmp_path, intent, *extra)
    rows, state, obs_dim = check_smoke_run(tmp_path, "cql", intent, result, METRICS)
    assert float(rows[0]["alpha_prime"]) > 0  # maze2d preset: the Lagrange version
    assert state["algo"]["critic_1"]["net.0.weight"].shape[1] == obs_dim + 2
    assert state["algo"]["total_it"] == 200 and state["algo"]["log_alpha_prime"].item() != 1.0


def test_interrupted_run_equals_uninterrupted(data_dir, tmp_path):
    extra = ["--cql_max_target_backup", "true"]
    whole = run_cql(data_dir, tmp_path / "a", "random", *extra)
    assert run_cql(data_dir, tmp_path / "b", "random", "--chunk_steps", "100", *extra) is None
    resumed = run_cql(data_dir, tmp_path / "b", "random", "--chunk_steps", "100", *extra)
    assert resumed["normalized_score"] == whole["normalized_score"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rows]  # noqa: E731
    assert strip(metrics_rows(tmp_path / "a", "random")) == strip(metrics_rows(tmp_path / "b", "random"))
    states = [load_checkpoint(tmp_path / x / ENV / "cql" / "random" / "seed0" / "checkpoint.pt")["algo"] for x in "ab"]
    assert torch.equal(states[0]["log_alpha"], states[1]["log_alpha"])
    assert all(torch.equal(states[0]["actor"][k], states[1]["actor"][k]) for k in states[0]["actor"])
