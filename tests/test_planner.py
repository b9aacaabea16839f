"""Latent MPC (manager/planner.py) against tiny fake models whose scores are known analytically."""
from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from manager.planner import plan_mppi, plan_policy_samples, score_sequences, select_elite


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class LineModel:
    """1-D latent on a line: z' = z + a_0, R(z, a) = a_0, E[pi(z)] = 0.5 z (every action dim),
    twin critic Q_1 = z + a_0 (= 1.5 z at the terminal state), Q_2 = 2 z.

    So G = sum_t gamma^t a_t + gamma^H min(1.5 z_H, 2 z_H), z_H = z_0 + sum_t a_t.
    pi_noise draws indices into a fixed list of candidate actions; pi_sample returns those candidates
    and records them, so tests can rebuild the sampled sequences.
    """

    def __init__(self, candidates: Tensor | None = None, act_dim: int = 1):
        self.act_dim = act_dim
        self.candidates = candidates  # (C, A)
        self.sampled: list[Tensor] = []

    def next(self, z: Tensor, a: Tensor) -> Tensor:
        return z + a[..., :1]

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        return a[..., :1]

    def Q(self, z: Tensor, a: Tensor) -> Tensor:
        return torch.stack([z + a[..., :1], 2.0 * z])

    def pi_mean(self, z: Tensor) -> Tensor:
        return (0.5 * z).expand(*z.shape[:-1], self.act_dim)

    def pi_noise(self, batch_shape, generator: torch.Generator) -> Tensor:
        return torch.randint(len(self.candidates), batch_shape, generator=generator)

    def pi_sample(self, z: Tensor, *, noise: Tensor) -> Tensor:
        a = self.candidates[noise]
        self.sampled.append(a)
        return a


def reference_score(z0: float, seq: list[float], gamma: float) -> float:
    """LineModel's G computed by hand, scalar by scalar."""
    z, total = z0, 0.0
    for t, a in enumerate(seq):
        total += gamma ** t * a
        z += a
    return total + gamma ** len(seq) * min(1.5 * z, 2.0 * z)


# --- score_sequences ------------------------------------------------------------------------
def test_score_sequences_matches_hand_computation():
    model = LineModel()
    z0 = torch.tensor([[1.0], [-1.0]])                                   # N = 2
    # actions (H=2, N=2, S=2, A=1): env 0 sequences (0.5, -1), (-1, -1); env 1 (1, 1), (0, 0.5)
    actions = torch.tensor([[[0.5, -1.0], [1.0, 0.0]],
                            [[-1.0, -1.0], [1.0, 0.5]]]).unsqueeze(-1)
    scores = score_sequences(model, z0, actions, gamma=0.5)
    expected = torch.tensor([
        # z_2 = 0.5 > 0, head 1 is the min: 0.5 - 0.5 + 0.25 * 0.75
        [0.5 + 0.5 * -1.0 + 0.25 * min(0.75, 1.0),
         # z_2 = -1 < 0, head 2 is the min: -1 - 0.5 + 0.25 * (-2)
         -1.0 + 0.5 * -1.0 + 0.25 * min(-1.5, -2.0)],
        [1.0 + 0.5 * 1.0 + 0.25 * min(1.5, 2.0),                          # z_2 = 1
         0.0 + 0.5 * 0.5 + 0.25 * min(-0.75, -1.0)],                      # z_2 = -0.5
    ])
    assert expected.tolist() == [[0.1875, -2.0], [1.875, 0.0]]
    torch.testing.assert_close(scores, expected)
    assert scores.shape == (2, 2)


def test_score_sequences_gamma_weights_each_step():
    model = LineModel()
    actions = torch.tensor([0.3, -0.2, 0.7]).view(3, 1, 1, 1)           # H = 3, N = S = A = 1
    for gamma in (1.0, 0.9, 0.0):
        score = score_sequences(model, torch.tensor([[0.25]]), actions, gamma=gamma)
        expected = reference_score(0.25, [0.3, -0.2, 0.7], gamma)
        assert score.shape == (1, 1)
        assert score.item() == pytest.approx(expected, abs=1e-6)


# --- select_elite ---------------------------------------------------------------------------
def test_select_elite_uniform_among_elites_at_temperature_zero():
    rows, k = 20_000, 4
    scores = torch.tensor([0.3, 5.0, -1.0, 4.0, 2.0, 4.5, 0.0, 1.0]).expand(rows, 8)
    ids = torch.arange(8.0).view(1, 8, 1).expand(rows, 8, 1)             # candidate = its own index
    chosen = select_elite(scores, ids, k, 0.0, gen(1)).squeeze(-1).long()
    counts = torch.bincount(chosen, minlength=8).float() / rows
    elites = [1, 5, 3, 4]                                                # the 4 best: 5.0, 4.5, 4.0, 2.0
    assert counts[[i for i in range(8) if i not in elites]].sum() == 0   # never a non-elite
    torch.testing.assert_close(counts[elites], torch.full((4,), 0.25), atol=0.02, rtol=0)


def test_select_elite_weights_follow_exp_temperature():
    rows = 40_000
    scores = torch.tensor([0.0, -1.0, -10.0, -2.0]).expand(rows, 4)
    ids = torch.arange(4.0).view(1, 4, 1).expand(rows, 4, 1)
    chosen = select_elite(scores, ids, 3, 1.0, gen(2)).squeeze(-1).long()
    freq = torch.bincount(chosen, minlength=4).float() / rows
    p = torch.tensor([1.0, math.exp(-1.0), 0.0, math.exp(-2.0)])
    torch.testing.assert_close(freq, p / p.sum(), atol=0.015, rtol=0)
    assert freq[2] == 0


def test_select_elite_returns_whole_sequences_per_env():
    scores = torch.tensor([[1.0, 3.0, 2.0], [9.0, 0.0, 8.0]])
    seqs = torch.arange(2 * 3 * 4 * 2.0).view(2, 3, 4, 2)                # (N, S, H, A)
    chosen = select_elite(scores, seqs, 1, 0.5, gen())
    torch.testing.assert_close(chosen, torch.stack([seqs[0, 1], seqs[1, 0]]))


# --- plan_policy_samples ----------------------------------------------------------------------
CANDIDATES = torch.linspace(-1.0, 1.0, 41).unsqueeze(-1)                # (C, A=1)


def _sampled_sequences(model: LineModel) -> Tensor:
    return torch.stack(model.sampled)                                    # (H, N, S, A)


def _reference_scores(z0: Tensor, seqs: Tensor, gamma: float) -> Tensor:
    n, s = seqs.shape[1:3]
    return torch.tensor([[reference_score(z0[i, 0].item(), seqs[:, i, j, 0].tolist(), gamma)
                          for j in range(s)] for i in range(n)])


@pytest.mark.parametrize("num_elites, temperature", [(1, 0.5), (16, 1e6)])
def test_policy_planner_picks_argmax_sequence(num_elites, temperature):
    model = LineModel(CANDIDATES)
    z0 = torch.tensor([[-2.0], [-0.5], [0.0], [0.7], [3.0]])
    gamma = 0.9
    a = plan_policy_samples(model, z0, horizon=3, num_samples=32, num_elites=num_elites,
                            temperature=temperature, gamma=gamma, generator=gen(3))
    seqs = _sampled_sequences(model)
    assert seqs.shape == (3, 5, 32, 1)
    best = _reference_scores(z0, seqs, gamma).argmax(dim=1)              # (N,)
    expected = seqs[0, torch.arange(5), best]                            # (N, A)
    torch.testing.assert_close(a, expected)


def test_policy_planner_never_returns_a_non_elite():
    model = LineModel(CANDIDATES)
    n, k, gamma = 400, 5, 0.9
    z0 = torch.linspace(-1.0, 1.0, n).unsqueeze(-1)
    a = plan_policy_samples(model, z0, horizon=2, num_samples=24, num_elites=k, temperature=0.0,
                            gamma=gamma, generator=gen(4))
    seqs = _sampled_sequences(model)
    ref = _reference_scores(z0, seqs, gamma)                             # (N, S)
    kth = ref.topk(k, dim=1).values[:, -1:]                              # (N, 1)
    elite = ref >= kth - 1e-6                                            # (N, S)
    is_elite_action = ((seqs[0, ..., 0] == a) & elite).any(dim=1)        # a (N, 1) broadcasts over S
    assert bool(is_elite_action.all())
    # temperature 0 spreads the choice: the returned action is not always the best sequence's
    best_first = seqs[0, torch.arange(n), ref.argmax(dim=1), 0]
    assert (a[:, 0] != best_first).float().mean() > 0.5


class SharedNoisePolicy(LineModel):
    """Policy samples depend on the latent and on noise of shape (S, A) shared by all envs, so the
    generator's stream does not depend on N: a batched call sees the same candidates per env as
    a call with that env alone (with one elite, the final draw has one outcome)."""

    def pi_noise(self, batch_shape, generator: torch.Generator) -> Tensor:
        noise = torch.rand(batch_shape[-1], self.act_dim, generator=generator) * 2.0 - 1.0  # (S, A)
        return noise.expand(*batch_shape, self.act_dim)                                    # (N, S, A)

    def pi_sample(self, z: Tensor, *, noise: Tensor) -> Tensor:
        return (noise - 0.3 * z).clamp(-1.0, 1.0)                                          # (N, S, A)


def test_policy_planner_batched_equals_one_env_at_a_time():
    model = SharedNoisePolicy(act_dim=2)
    z0 = torch.tensor([[-1.5], [0.2], [2.5]])
    kwargs = dict(horizon=3, num_samples=64, num_elites=1, gamma=0.95)
    batched = plan_policy_samples(model, z0, generator=gen(5), **kwargs)
    alone = torch.cat([plan_policy_samples(model, z0[i:i + 1], generator=gen(5), **kwargs)
                       for i in range(3)])
    assert batched.shape == (3, 2)
    torch.testing.assert_close(batched, alone)
    assert not torch.equal(batched[0], batched[1])                      # envs really differ


class TinyNetModel(torch.nn.Module):
    """A small random network model with a tanh-Gaussian policy (d = 4, A = 3)."""

    act_dim = 3

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.f = torch.nn.Linear(7, 4)
        self.r = torch.nn.Linear(7, 1)
        self.q = torch.nn.Linear(7, 2)
        self.pi = torch.nn.Linear(4, 6)

    def next(self, z, a):
        return torch.tanh(self.f(torch.cat([z, a], -1)))

    def reward(self, z, a):
        return self.r(torch.cat([z, a], -1))

    def Q(self, z, a):
        return self.q(torch.cat([z, a], -1)).movedim(-1, 0).unsqueeze(-1)   # (2, ..., 1)

    def pi_mean(self, z):
        return torch.tanh(self.pi(z)[..., :3])

    def pi_noise(self, batch_shape, generator):
        return torch.randn(*batch_shape, self.act_dim, generator=generator)

    def pi_sample(self, z, *, noise):
        mu, log_std = self.pi(z).chunk(2, -1)
        return torch.tanh(mu + log_std.clamp(-5, 2).exp() * noise)


def test_policy_planner_same_seed_same_plan():
    model = TinyNetModel()
    z0 = torch.randn(6, 4, generator=gen(9))
    a1 = plan_policy_samples(model, z0, horizon=2, generator=gen(7))
    a2 = plan_policy_samples(model, z0, horizon=2, generator=gen(7))
    a3 = plan_policy_samples(model, z0, horizon=2, generator=gen(8))
    assert a1.shape == (6, 3)
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, a3)
    assert bool((a1.abs() <= 1).all())


# --- plan_mppi --------------------------------------------------------------------------------
class QuadraticModel:
    """Static latent (z' = z), R(z, a) = -sum_i (a_i - z_0)^2, Q = 0: the optimum is a_t = z_0
    in every dimension. The policy proposes uniform noise in [-1, 1]."""

    act_dim = 2

    def next(self, z, a):
        return z

    def reward(self, z, a):
        return -((a - z[..., :1]) ** 2).sum(-1, keepdim=True)

    def Q(self, z, a):
        return torch.zeros(2, *z.shape[:-1], 1)

    def pi_mean(self, z):
        return torch.zeros(*z.shape[:-1], self.act_dim)

    def pi_noise(self, batch_shape, generator):
        return torch.rand(*batch_shape, self.act_dim, generator=generator)

    def pi_sample(self, z, *, noise):
        return noise * 2.0 - 1.0


def test_mppi_converges_to_the_optimum():
    n = 64
    targets = torch.linspace(-0.8, 0.8, n).unsqueeze(-1)                # (N, 1): per-env optimum
    action, mean = plan_mppi(QuadraticModel(), targets, horizon=3, generator=gen(11))
    assert action.shape == (n, 2) and mean.shape == (3, n, 2)
    expected = targets.expand(n, 2)
    assert (mean - expected).abs().max() < 0.05                          # every step, every env
    # the action is one elite drawn with near-uniform weights (temperature 0.5), so it scatters
    # around the mean by about min_std: on average within 0.05, never far
    error = (action - expected).abs()
    assert error.mean() < 0.03 and error.max() < 0.1


def test_mppi_uses_the_policy_sequences():
    class ExactPolicy(QuadraticModel):
        def pi_sample(self, z, *, noise):
            return z[..., :1].expand(*z.shape[:-1], self.act_dim).clone()

    targets = torch.tensor([[0.3], [-0.7]])
    # random samples stay near 0 (std 1e-3), so only the policy sequences reach the optimum
    action, _ = plan_mppi(ExactPolicy(), targets, horizon=2, num_pi_samples=2, num_random=30,
                          iterations=1, num_elites=1, min_std=1e-3, max_std=1e-3, generator=gen())
    torch.testing.assert_close(action, targets.expand(2, 2))


def test_mppi_warm_start_shifts_prev_mean():
    model = QuadraticModel()
    z0 = torch.tensor([[0.0], [0.0]])
    prev = torch.tensor([[[0.9, -0.9], [0.5, 0.4]],
                         [[0.2, -0.3], [-0.6, 0.7]],
                         [[-0.4, 0.1], [0.3, -0.8]]])                    # (H=3, N=2, A=2)
    # a tiny std and no policy samples: every sequence sits at the initial mean, so the returned
    # mean and action reveal it (momentum blends the old mean with an identical new one)
    kwargs = dict(horizon=3, num_pi_samples=0, num_random=16, iterations=2, num_elites=4,
                  min_std=1e-5, max_std=1e-5)
    action, mean = plan_mppi(model, z0, generator=gen(), prev_mean=prev, **kwargs)
    shifted = torch.cat([prev[1:], torch.zeros(1, 2, 2)])
    torch.testing.assert_close(mean, shifted, atol=1e-4, rtol=0)
    torch.testing.assert_close(action, prev[1], atol=1e-4, rtol=0)
    cold_action, cold_mean = plan_mppi(model, z0, generator=gen(), **kwargs)
    torch.testing.assert_close(cold_mean, torch.zeros(3, 2, 2), atol=1e-4, rtol=0)
    torch.testing.assert_close(cold_action, torch.zeros(2, 2), atol=1e-4, rtol=0)
    with pytest.raises(ValueError):
        plan_mppi(model, z0, generator=gen(), prev_mean=prev[:2], **kwargs)


def test_mppi_same_seed_same_plan():
    model = TinyNetModel()
    z0 = torch.randn(5, 4, generator=gen(9))
    a1, m1 = plan_mppi(model, z0, horizon=3, generator=gen(12))
    a2, m2 = plan_mppi(model, z0, horizon=3, generator=gen(12), prev_mean=None)
    assert a1.shape == (5, 3) and m1.shape == (3, 5, 3)
    assert torch.equal(a1, a2) and torch.equal(m1, m2)
    assert bool((a1.abs() <= 1).all())
    a3, m3 = plan_mppi(model, z0, horizon=3, generator=gen(13), prev_mean=m1)
    assert a3.shape == (5, 3) and m3.shape == (3, 5, 3)
