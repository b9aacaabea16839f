"""The TD3+BC worker: its loss pieces by hand, the delayed actor update, CORL's presets, smoke runs
with every intent mode and an interrupted run equal to an uninterrupted one."""
from __future__ import annotations

import copy

import pytest
import torch

from common.checkpoint import load_checkpoint
from corl import td3_bc
from corl.shared import config as worker_config
from corl.shared.losses import td_target, twin_critic_loss
from corl.shared.nets import DeterministicActor, QNetwork
from worker_helpers import assert_presets, check_smoke_run, smoke_run
from worker_helpers import metrics_rows as worker_metrics_rows

ENV = "maze2d-umaze-v1"


def test_smoothing_noise_is_scaled_then_clipped_and_the_target_action_clamped():
    eps = torch.tensor([-5.0, -1.0, 0.5, 2.0, 3.0])
    # 0.2 * eps = [-1, -0.2, 0.1, 0.4, 0.6] -> clipped to +-0.5
    assert td3_bc.smoothing_noise(eps, 0.2, 0.5).tolist() == pytest.approx([-0.5, -0.2, 0.1, 0.4, 0.5])
    assert td3_bc.smoothing_noise(eps, 2.0, 1.0).tolist() == pytest.approx([-1.0, -1.0, 1.0, 1.0, 1.0])
    action = td3_bc.smoothed_target_action(torch.tensor([0.9, -0.9, 0.2]), torch.tensor([0.5, -0.5, 0.1]), 1.0)
    assert action.tolist() == pytest.approx([1.0, -1.0, 0.3])  # clamped to the action bounds
    action = td3_bc.smoothed_target_action(torch.tensor([1.5, 0.0]), torch.tensor([0.4, -2.5]), 2.0)
    assert action.tolist() == pytest.approx([1.9, -2.0])


def test_normalised_q_term_of_the_actor_loss_by_hand():
    pi = torch.tensor([[0.5, 0.0], [-0.5, 1.0]])
    action = torch.tensor([[0.0, 0.0], [0.0, 0.0]])  # MSE = (0.25 + 0 + 0.25 + 1) / 4 = 0.375
    q = torch.tensor([2.0, -4.0], requires_grad=True)  # mean|Q| = 3, mean Q = -1
    loss = td3_bc.td3_bc_actor_loss(pi, action, q, alpha=2.5)
    assert loss.item() == pytest.approx(2.5 / 3 * 1.0 + 0.375)
    loss.backward()
    # lambda is detached: dL/dQ_i = -lambda / B only (no term through mean|Q|)
    assert q.grad.tolist() == pytest.approx([-2.5 / 3 / 2] * 2)
    # the loss is invariant to the scale of Q apart from the BC term: Q x 100 gives the same value
    assert td3_bc.td3_bc_actor_loss(pi, action, 100 * q.detach(), 2.5).item() == pytest.approx(loss.item())
    assert td3_bc.td3_bc_actor_loss(pi, action, q.detach(), alpha=0.0).item() == pytest.approx(0.375)


def test_td_target_and_twin_critic_loss_by_hand():
    target = td_target(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([10.0, 10.0]), 0.9)
    assert target.tolist() == pytest.approx([10.0, 1.0])  # the terminal row does not bootstrap
    # MSE([1, 3] vs [2, 2]) = 1 plus MSE([2, 4] vs [2, 2]) = 2: the sum, as CORL
    loss = twin_critic_loss(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 4.0]), torch.tensor([2.0, 2.0]))
    assert loss.item() == pytest.approx(3.0)


def tiny_td3_bc(seed: int = 0, alpha: float = 2.5, policy_freq: int = 2, tau: float = 0.1) -> td3_bc.TD3BC:
    torch.manual_seed(seed)
    return td3_bc.TD3BC(DeterministicActor(3, 2, 1.0, hidden_dim=16), QNetwork(3, 2, 16), QNetwork(3, 2, 16),
                        max_action=1.0, discount=0.99, tau=tau, policy_noise=0.2, noise_clip=0.5,
                        policy_freq=policy_freq, alpha=alpha, lr=1e-2)


def tiny_batch(n: int = 32, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, generator=g), torch.rand(n, 2, generator=g) * 2 - 1, torch.randn(n, 1, generator=g),
            torch.randn(n, 3, generator=g), (torch.rand(n, 1, generator=g) < 0.2).float()]


def params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_delayed_actor_and_target_updates():
    algo = tiny_td3_bc(policy_freq=2, tau=0.1)
    before = {name: params(getattr(algo, name)) for name in ("actor", "actor_target", "critic_1_target")}
    critic_before = params(algo.critic_1)
    batch = tiny_batch()
    first = algo.update(batch)  # step 1: critics only
    assert set(first) == {"critic_loss", "actor_loss"}
    assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in first.values())
    assert all(not torch.equal(a, b) for a, b in zip(critic_before, algo.critic_1.parameters()))
    for name in ("actor", "actor_target", "critic_1_target"):
        assert all(torch.equal(a, b) for a, b in zip(before[name], getattr(algo, name).parameters())), name
    # the loss reported on a non-policy step is the current actor's loss
    with torch.no_grad():
        pi = algo.actor(batch[0])
        expected = td3_bc.td3_bc_actor_loss(pi, batch[1], algo.critic_1(batch[0], pi), 2.5)
    torch.testing.assert_close(first["actor_loss"], expected)

    second = algo.update(batch)  # step 2: actor, then the three targets move by tau towards the new nets
    assert set(second) == set(first) and algo.total_it == 2
    assert all(not torch.equal(a, b) for a, b in zip(before["actor"], algo.actor.parameters()))
    for old, new, target in zip(before["actor_target"], algo.actor.parameters(), algo.actor_target.parameters()):
        torch.testing.assert_close(target, 0.9 * old + 0.1 * new)
    for old, new, target in zip(before["critic_1_target"], algo.critic_1.parameters(),
                                algo.critic_1_target.parameters()):
        torch.testing.assert_close(target, 0.9 * old + 0.1 * new)


def test_learning_progress_on_a_fixed_terminal_batch():
    """All transitions terminal: the critics regress onto r; alpha 0 makes the actor plain BC."""
    batch = tiny_batch(64)
    batch[4] = torch.ones_like(batch[4])
    algo = tiny_td3_bc(alpha=0.0, policy_freq=2)
    history = [algo.update(batch) for _ in range(300)]
    assert history[-1]["critic_loss"] < 0.01 * history[0]["critic_loss"]
    assert history[-1]["actor_loss"] < 0.5 * history[0]["actor_loss"]
    with torch.no_grad():
        assert (algo.critic_1_target(batch[0], batch[1]) - batch[2].squeeze(-1)).abs().mean() < 0.1


def test_act_is_the_deterministic_actor_output():
    algo = tiny_td3_bc()
    obs = torch.randn(8, 3)
    assert torch.equal(algo.act(obs), algo.act(obs)) and torch.equal(algo.act(obs), algo.actor(obs).detach())


def test_state_dict_round_trip_continues_identically():
    algo, other = tiny_td3_bc(0), tiny_td3_bc(5)
    for _ in range(3):
        algo.update(tiny_batch())
    other.load_state_dict(copy.deepcopy(algo.state_dict()))  # (a loaded optimiser state shares tensors)
    assert other.total_it == 3
    for _ in range(2):  # one critic-only step and one policy step, same smoothing noise draws
        batch = tiny_batch(seed=7)
        torch.manual_seed(3)
        expected = algo.update(batch)
        torch.manual_seed(3)
        got = other.update(batch)
        assert all(torch.equal(expected[k], got[k]) for k in expected)
    for name in ("actor_target", "critic_1_target", "critic_2_target"):
        assert all(torch.equal(a, b) for a, b in zip(getattr(algo, name).parameters(),
                                                      getattr(other, name).parameters())), name


def test_corl_presets_load():
    cfg = worker_config.parse_worker_config(td3_bc.TD3BCConfig, "td3_bc", ["--env", ENV])
    assert (cfg.algo, cfg.alpha, cfg.discount, cfg.tau, cfg.policy_noise, cfg.noise_clip, cfg.policy_freq) == (
        "td3_bc", 2.5, 0.99, 0.005, 0.2, 0.5, 2)
    assert (cfg.batch_size, cfg.normalize, cfg.normalize_reward) == (256, True, False)
    cfg = worker_config.parse_worker_config(td3_bc.TD3BCConfig, "td3_bc", ["--env", ENV, "--alpha", "1.0"])
    assert cfg.alpha == 1.0
    expected = {"antmaze": {"alpha": 2.5, "normalize": True, "normalize_reward": True},
                "halfcheetah": {"alpha": 2.5, "normalize": True, "normalize_reward": False},
                "maze2d": {"alpha": 2.5, "normalize": True, "normalize_reward": False}}
    assert_presets("td3_bc", td3_bc.TD3BCConfig, expected)


# --- end to end ---------------------------------------------------------------------------------
def run_td3_bc(data_dir, runs_dir, intent, *extra):
    return smoke_run(td3_bc.train, td3_bc.TD3BCConfig, "td3_bc", data_dir, runs_dir, intent, *extra)


def metrics_rows(runs_dir, intent) -> list[dict[str, str]]:
    return worker_metrics_rows(runs_dir, "td3_bc", intent)


@pytest.mark.parametrize("intent", ["none", "manager"])  # random: the interrupted-run test below
def test_td3_bc_trains_with_each_intent(data_dir, tmp_path, smoke_manager, intent):
    extra = ["--manager", str(smoke_manager)] if intent == "manager" else []
    result = run_td3_bc(data_dir, tmp_path, intent, *extra)
    rows, state, obs_dim = check_smoke_run(tmp_path, "td3_bc", intent, result, ("critic_loss", "actor_loss"))
    assert float(rows[-1]["critic_loss"]) < float(rows[0]["critic_loss"])
    assert state["algo"]["actor"]["net.0.weight"].shape[1] == obs_dim
    assert state["algo"]["total_it"] == 200


def test_interrupted_run_equals_uninterrupted(data_dir, tmp_path):
    extra = ["--policy_freq", "3"]  # step 100 is then not a policy step: the resume lands mid-cycle
    whole = run_td3_bc(data_dir, tmp_path / "a", "random", *extra)
    assert run_td3_bc(data_dir, tmp_path / "b", "random", "--chunk_steps", "100", *extra) is None
    resumed = run_td3_bc(data_dir, tmp_path / "b", "random", "--chunk_steps", "100", *extra)
    assert resumed["normalized_score"] == whole["normalized_score"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rows]  # noqa: E731
    assert strip(metrics_rows(tmp_path / "a", "random")) == strip(metrics_rows(tmp_path / "b", "random"))
    states = [load_checkpoint(tmp_path / x / ENV / "td3_bc" / "random" / "seed0" / "checkpoint.pt") for x in "ab"]
    for name in ("actor", "actor_target", "critic_2_target"):
        assert all(torch.equal(states[0]["algo"][name][k], states[1]["algo"][name][k]) for k in states[0]["algo"][name])
