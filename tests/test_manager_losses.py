"""Loss terms, policy heads and world-model shapes on tiny inputs, against hand-computed values."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from manager import distributions as D
from manager import losses as L
from manager.config import make_config
from manager.world_model import WorldModel


def test_expectile_loss_by_hand():
    u = torch.tensor([-2.0, -0.5, 0.0, 0.5, 3.0])
    # |tau - 1(u<0)| u^2 with tau = 0.9: negatives weigh 0.1, non-negatives 0.9
    expected = torch.tensor([0.1 * 4, 0.1 * 0.25, 0.0, 0.9 * 0.25, 0.9 * 9])
    assert torch.allclose(L.expectile_loss(u, 0.9), expected)
    assert torch.allclose(L.expectile_loss(u, 0.5), 0.5 * u ** 2)


def test_awr_weights_by_hand_and_clipped():
    q = torch.tensor([[1.0], [2.0], [10.0]], requires_grad=True)
    v = torch.tensor([[1.0], [1.5], [0.0]])
    w = L.awr_weights(q, v, beta=3.0, max_weight=100.0)
    assert w.flatten().tolist() == pytest.approx([1.0, math.exp(1.5), 100.0])
    assert not w.requires_grad


def test_critic_td_target_and_consistency_by_hand():
    q = torch.tensor([[[1.0]], [[3.0]]])  # two heads, one sample
    y = L.td_target(torch.tensor([[0.5]]), torch.tensor([[1.0]]), 0.9, torch.tensor([[2.0]]))
    assert y.item() == pytest.approx(0.5 + 0.9 * 2.0)
    assert L.critic_loss(q, y).item() == pytest.approx((1 - 2.3) ** 2 + (3 - 2.3) ** 2)
    assert L.td_target(torch.tensor([[0.5]]), torch.tensor([[0.0]]), 0.9, torch.tensor([[2.0]])).item() == 0.5
    z1, z2 = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    assert L.consistency_loss(z1, z2).item() == pytest.approx((0 + 4 + 9) / 3)


def test_iql_policy_loss_by_hand():
    loss = L.iql_policy_loss(torch.tensor([[-1.0]]), torch.tensor([[2.0]]), torch.tensor([[0.5]]), 0.1)
    assert loss.item() == pytest.approx(-2.0 * -1.0 + 0.1 * 0.5)


def test_tanh_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    mu, log_std = torch.randn(5, 3), torch.randn(5, 3).clamp(-2, 1)
    a = torch.rand(5, 3) * 1.8 - 0.9
    ref = TransformedDistribution(Normal(mu, log_std.exp()), TanhTransform()).log_prob(a).sum(-1, keepdim=True)
    assert torch.allclose(D.tanh_gaussian_log_prob(mu, log_std, a), ref, atol=1e-4)
    gen = torch.Generator().manual_seed(1)
    sample, logp = D.tanh_gaussian_rsample(mu, log_std, torch.randn(mu.shape, generator=gen))
    assert sample.abs().max() < 1
    assert torch.allclose(logp, D.tanh_gaussian_log_prob(mu, log_std, sample), atol=1e-3)


def test_log_std_squashed_into_its_range():
    _, log_std = D.gaussian_params(torch.tensor([[0.0, 0.0, -100.0, 100.0]]), -5.0, 2.0)
    assert log_std.flatten().tolist() == pytest.approx([-5.0, 2.0])


def test_discrete_log_prob_is_minus_summed_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(4, 8, 10)  # batch 4, L = 8, C = 10
    classes = torch.randint(0, 10, (4, 8))
    onehot = F.one_hot(classes, 10).float().flatten(-2)
    ce = F.cross_entropy(logits.reshape(-1, 10), classes.reshape(-1), reduction="none").reshape(4, 8).sum(-1)
    assert torch.allclose(D.categorical_log_prob(logits, onehot).squeeze(-1), -ce, atol=1e-5)


def test_categorical_samples_are_one_hot_and_follow_the_probabilities():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).expand(20000, 1, 3)
    samples = D.categorical_sample(logits, torch.rand(logits.shape, generator=torch.Generator().manual_seed(0)))
    assert samples.shape == (20000, 3) and torch.all(samples.sum(-1) == 1)
    assert samples.mean(0).tolist() == pytest.approx([0.7, 0.2, 0.1], abs=0.015)


def test_straight_through_gradient_flows_into_inverse_dynamics():
    cfg = make_config("manager", enc_dim=16, mlp_dim=16)
    model = WorldModel(obs_dim=4, act_dim=2, cfg=cfg)
    z, z_next = torch.randn(6, cfg.latent_dim), torch.randn(6, cfg.latent_dim)
    logits = model.inverse(z, z_next)
    onehot = D.categorical_sample(logits.detach(), torch.rand(logits.shape, generator=torch.Generator().manual_seed(0)))
    a = D.straight_through(onehot, logits)
    assert torch.allclose(a.detach(), onehot, atol=1e-6)  # forward value is the one-hot
    model.next(z, a).pow(2).sum().backward()
    grads = [p.grad for p in model.inverse_dynamics.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("mode, act_dim, policy_dim", [("iql_td_mpc", 2, 4), ("td_mpc", 2, 2), ("manager", 80, 80)])
def test_world_model_shapes_and_zero_heads(mode, act_dim, policy_dim):
    cfg = make_config(mode, enc_dim=16, mlp_dim=16)
    model = WorldModel(obs_dim=4, act_dim=2, cfg=cfg)
    assert model.act_dim == act_dim and model.policy[-1].out_features == policy_dim
    obs = torch.randn(3, 7, 4)  # (H+1, B, obs)
    z = model.encode(obs)
    assert z.shape == (3, 7, cfg.latent_dim)
    a = model.pi_sample(z, torch.Generator().manual_seed(0))
    assert a.shape == (3, 7, act_dim) and a.abs().max() <= 1
    assert model.next(z, a).shape == z.shape
    assert model.Q(z, a).shape == (2, 3, 7, 1) and torch.all(model.Q(z, a) == 0)  # output layers start at zero
    assert torch.all(model.reward(z, a) == 0) and model.V(z).shape == (3, 7, 1)
    assert model.pi_mean(z).shape == (3, 7, act_dim)
    if mode != "td_mpc":
        assert model.pi_log_prob(z, a).shape == (3, 7, 1)
    if mode == "manager":
        assert torch.allclose(model.pi_mean(z).unflatten(-1, (8, 10)).sum(-1), torch.ones(3, 7, 8))
        assert model.inverse(z[:-1], z[1:]).shape == (2, 7, 8, 10)


def test_model_parameters_exclude_the_policy():
    model = WorldModel(4, 2, make_config("iql_td_mpc", enc_dim=8, mlp_dim=8))
    ids = {id(p) for p in model.model_parameters()}
    assert not any(id(p) in ids for p in model.policy.parameters())
    assert len(ids) + len(list(model.policy.parameters())) == len(list(model.parameters()))
