"""Latent-space MPC, batched over N environments (SPEC.md section 1 "Planning", "Vanilla TD-MPC").

Two planners share one scorer and one elite draw:

- `plan_policy_samples`: IQL-TD-MPC's planner (paper section 3): n_pi policy sequences, n_r = 0,
  no MPPI refinement; keep the best n_e, draw one with p_i ~ exp(temperature (G_i - max G)),
  return its first action.
- `plan_mppi`: vanilla TD-MPC's planner (paper section 2.2; nicklashansen/tdmpc
  `src/algorithm/tdmpc.py`, `plan`): n_pi policy sequences plus n_r Gaussian sequences refined for
  a few MPPI iterations, with a warm-started mean.

A sequence a_0..a_{H-1} from latent z_0 (z_{t+1} = f(z_t, a_t)) is scored by

    G = sum_{t<H} gamma^t R(z_t, a_t) + gamma^H min_{i=1,2} Q_i(z_H, E[pi(z_H)]).

Hot path: static shapes, no `.item()` / host syncs, no Python loop over envs or samples (only over
the horizon H and the MPPI iterations). All randomness is drawn first, from the `torch.Generator`
passed in (`draw_plan_noise`: policy-sample noise per step, MPPI's Gaussian sequences, the elite
draw), so the same generator state gives the same plan, and the planning itself
(`policy_samples_plan`, `mppi_plan`) is a pure function that `torch.compile` traces as one graph;
`plan_policy_samples` / `plan_mppi` do both steps. Shapes: N envs, S sequences per env, K elites,
H horizon, d latent, A action size; action sequences are laid out (H, N, S, A).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Protocol

import torch
from torch import Tensor

__all__ = ["PlanningModel", "PlanNoise", "draw_plan_noise", "score_sequences", "select_elite", "policy_samples_plan",
           "mppi_plan", "plan_policy_samples", "plan_mppi"]


class PlanningModel(Protocol):
    """What the planners need from a world model (manager.world_model.WorldModel fits).

    Continuous agents return actions in [-1, 1]^A; the discrete Manager returns flattened one-hot
    samples and its category probabilities as `pi_mean` - the planners do not care.
    """

    act_dim: int  # A

    def next(self, z: Tensor, a: Tensor) -> Tensor:
        """Latent dynamics f: (..., d), (..., A) -> (..., d)."""
        ...

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        """Reward R: -> (..., 1)."""
        ...

    def Q(self, z: Tensor, a: Tensor) -> Tensor:
        """Twin critic, stacked: -> (2, ..., 1)."""
        ...

    def pi_noise(self, batch_shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        """The random draw behind one policy sample per entry of batch_shape: (*batch_shape, ...)."""
        ...

    def pi_sample(self, z: Tensor, *, noise: Tensor) -> Tensor:
        """A policy sample from pi_noise's draw: (..., d), noise -> (..., A)."""
        ...

    def pi_mean(self, z: Tensor) -> Tensor:
        """E[pi(z)] (..., d) -> (..., A), used for the terminal value."""
        ...


# --- scoring ------------------------------------------------------------------------------------
def _rollout(model: PlanningModel, z0: Tensor, horizon: int, gamma: float,
             act: Callable[[int, Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """Unroll f for `horizon` steps with a_t = act(t, z_t) and score the sequence.

    z0 (N, S, d). Returns the actions (H, N, S, A) and G (N, S) (formula in the module docstring).
    One code path for given sequences and for policy sequences, so each f call happens once.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    z = z0                                                    # (N, S, d)
    ret = z0.new_zeros(z0.shape[:-1])                         # (N, S)
    discount = 1.0
    actions = []
    for t in range(horizon):
        a = act(t, z)                                         # (N, S, A)
        ret = ret + discount * model.reward(z, a).squeeze(-1)
        z = model.next(z, a)
        discount *= gamma
        actions.append(a)
    terminal_q = model.Q(z, model.pi_mean(z)).amin(dim=0)     # (N, S, 1): min of the twin heads
    ret = ret + discount * terminal_q.squeeze(-1)
    return torch.stack(actions), ret                          # (H, N, S, A), (N, S)


def _expand_latent(z0: Tensor, num_sequences: int) -> Tensor:
    """(N, d) -> (N, S, d), a view: every sequence of an env starts from its z_0."""
    return z0.unsqueeze(1).expand(z0.shape[0], num_sequences, z0.shape[-1])


def score_sequences(model: PlanningModel, z0: Tensor, actions: Tensor, gamma: float) -> Tensor:
    """G (N, S) of given action sequences `actions` (H, N, S, A) from latents z0 (N, d).

    G = sum_{t<H} gamma^t R(z_t, a_t) + gamma^H min Q(z_H, E[pi(z_H)])  (paper section 2.2 / 3).
    """
    z = _expand_latent(z0, actions.shape[2])                  # (N, S, d)
    return _rollout(model, z, actions.shape[0], gamma, lambda t, _z: actions[t])[1]


def _policy_sequences(model: PlanningModel, z0: Tensor, noise: Tensor, gamma: float) -> tuple[Tensor, Tensor]:
    """Sample a_t ~ pi(z_t) with noise[t], z_{t+1} = f(z_t, a_t): actions (H, N, S, A) and their G (N, S)."""
    z = _expand_latent(z0, noise.shape[2])                    # (N, S, d)
    return _rollout(model, z, noise.shape[0], gamma, lambda t, z_t: model.pi_sample(z_t, noise=noise[t]))


# --- the random draws ---------------------------------------------------------------------------
class PlanNoise(NamedTuple):
    """Every random draw of one plan, taken before the planning computation."""
    policy: Tensor            # (H, N, S, ...) model.pi_noise of the policy sequences, per step
    gaussian: Tensor | None   # (I, H, N, R, A) N(0, 1) of MPPI's sequences per iteration (plan_mppi only)
    choice: Tensor            # (N, K) Exp(1): the final elite draw, argmax(w / q) ~ Categorical(w)


def draw_plan_noise(model: PlanningModel, z0: Tensor, *, horizon: int, num_pi_samples: int, num_elites: int,
                    generator: torch.Generator, num_random: int = 0, iterations: int = 0) -> PlanNoise:
    """The draws of a plan from z0 (N, d), in a fixed order: the policy noise step by step, MPPI's
    Gaussian sequences iteration by iteration, then the elite draw."""
    n, device = z0.shape[0], z0.device
    policy = torch.stack([model.pi_noise((n, num_pi_samples), generator) for _ in range(horizon)])
    gaussian = None
    if num_random > 0:
        gaussian = torch.stack([torch.randn((horizon, n, num_random, model.act_dim), generator=generator,
                                            device=device, dtype=z0.dtype) for _ in range(iterations)])
    choice = torch.empty((n, num_elites), device=device, dtype=z0.dtype).exponential_(1.0, generator=generator)
    return PlanNoise(policy, gaussian, choice)


# --- elites -------------------------------------------------------------------------------------
def _gather_samples(x: Tensor, index: Tensor, dim: int) -> Tensor:
    """Pick entries of the sample axis `dim` of x (..., N, S, ...) per env: index (N, K)."""
    shape = [1] * x.dim()
    shape[dim - 1], shape[dim] = index.shape
    full = list(x.shape)
    full[dim] = index.shape[1]
    return torch.gather(x, dim, index.view(shape).expand(full))


def _top_elites(scores: Tensor, num_elites: int) -> tuple[Tensor, Tensor]:
    """The num_elites best scores per env and their indices, both (N, K).

    NaN scores count as 0 and +-inf as the largest finite values (TD-MPC's nan_to_num), so the
    weights below are always a valid distribution.
    """
    if not 1 <= num_elites <= scores.shape[-1]:
        raise ValueError(f"num_elites must be in [1, {scores.shape[-1]}], got {num_elites}")
    return torch.topk(torch.nan_to_num(scores, nan=0.0), num_elites, dim=-1)


def _elite_weights(elite_scores: Tensor, temperature: float) -> Tensor:
    """Normalised weights (N, K) proportional to exp(temperature (G_i - max G))."""
    max_score = elite_scores.amax(dim=-1, keepdim=True)
    weights = torch.exp(temperature * (elite_scores - max_score))
    return weights / weights.sum(dim=-1, keepdim=True)


def _draw(weights: Tensor, exponential: Tensor) -> Tensor:
    """One index per env (N, 1) from the categorical `weights` (N, K), given Exp(1) noise (N, K):
    argmax_i w_i / q_i is distributed as Categorical(w) (the exponential race; it is how
    torch.multinomial draws a single sample, so the draws equal multinomial's from the same
    generator state). Sync-free: no argument checks on the host."""
    return (weights / exponential).argmax(dim=-1, keepdim=True)


def select_elite(scores: Tensor, first_actions_or_sequences: Tensor, num_elites: int, temperature: float,
                 generator: torch.Generator | None = None, exponential: Tensor | None = None) -> Tensor:
    """Keep the num_elites best of S candidates per env and draw one per env with probability
    proportional to exp(temperature (G_i - max G)) (paper section 2.2 step 3, SPEC "Planning").

    scores (N, S); first_actions_or_sequences (N, S, ...) -> the chosen candidates (N, ...).
    temperature 0 draws uniformly among the elites; a very large one picks the best. The draw uses
    `exponential` (N, K) Exp(1) noise, or draws it from `generator`.
    """
    elite_scores, elite_index = _top_elites(scores, num_elites)          # (N, K), (N, K)
    if exponential is None:
        exponential = torch.empty_like(elite_scores).exponential_(1.0, generator=generator)
    choice = _draw(_elite_weights(elite_scores, temperature), exponential)  # (N, 1)
    chosen = elite_index.gather(1, choice)                                # (N, 1) index into S
    return _gather_samples(first_actions_or_sequences, chosen, dim=1).squeeze(1)


# --- IQL-TD-MPC ---------------------------------------------------------------------------------
@torch.no_grad()
def policy_samples_plan(model: PlanningModel, z0: Tensor, noise: PlanNoise, *, num_elites: int = 64,
                        temperature: float = 0.5, gamma: float = 0.99) -> Tensor:
    """IQL-TD-MPC's planner (paper section 3; SPEC "Planning"): n_pi sequences from the policy
    through the model (H and n_pi from noise.policy), n_r = 0, no MPPI refinement; keep the best
    num_elites, draw one per env with p_i ~ exp(temperature (G_i - max G)) and return its first action.

    z0 (N, d) -> actions (N, A).
    """
    actions, scores = _policy_sequences(model, z0, noise.policy, gamma)  # (H, N, S, A), (N, S)
    return select_elite(scores, actions[0], num_elites, temperature, exponential=noise.choice)  # (N, A)


def plan_policy_samples(model: PlanningModel, z0: Tensor, *, horizon: int, num_samples: int = 512,
                        num_elites: int = 64, temperature: float = 0.5, gamma: float = 0.99,
                        generator: torch.Generator) -> Tensor:
    """policy_samples_plan with its noise drawn from `generator`."""
    noise = draw_plan_noise(model, z0, horizon=horizon, num_pi_samples=num_samples, num_elites=num_elites,
                            generator=generator)
    return policy_samples_plan(model, z0, noise, num_elites=num_elites, temperature=temperature, gamma=gamma)


# --- vanilla TD-MPC -----------------------------------------------------------------------------
def _initial_mean(z0: Tensor, horizon: int, act_dim: int, prev_mean: Tensor | None) -> Tensor:
    """Zeros (H, N, A), or the previous plan's mean shifted by one step: prev_mean[1:], then 0."""
    mean = z0.new_zeros(horizon, z0.shape[0], act_dim)
    if prev_mean is None:
        return mean
    if prev_mean.shape != mean.shape:
        raise ValueError(f"prev_mean must have shape {tuple(mean.shape)}, got {tuple(prev_mean.shape)}")
    return torch.cat([prev_mean[1:].to(mean), mean[:1]])


def _gaussian_sequences(mean: Tensor, std: Tensor, eps: Tensor) -> Tensor:
    """Sequences per env from N(mean, std) clamped to [-1, 1]: mean, std (H, N, A), eps (H, N, R, A)
    N(0, 1) -> (H, N, R, A)."""
    return (mean.unsqueeze(2) + std.unsqueeze(2) * eps).clamp(-1.0, 1.0)


def _weighted_moments(elite_actions: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Weighted mean and std over the elites: elite_actions (H, N, K, A), weights (N, K) summing
    to 1 -> (H, N, A) each."""
    w = weights[None, :, :, None]                                        # (1, N, K, 1)
    mean = (w * elite_actions).sum(dim=2)                                # (H, N, A)
    var = (w * (elite_actions - mean.unsqueeze(2)) ** 2).sum(dim=2)      # (H, N, A)
    return mean, var.sqrt()


@torch.no_grad()
def mppi_plan(model: PlanningModel, z0: Tensor, noise: PlanNoise, *, num_elites: int = 64, momentum: float = 0.1,
              temperature: float = 0.5, min_std: float = 0.05, max_std: float = 2.0, gamma: float = 0.99,
              prev_mean: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Vanilla TD-MPC's planner (paper section 2.2, Table 6; SPEC "Vanilla TD-MPC"). Continuous
    actions only.

    n_pi policy sequences (sampled once, as TD-MPC) plus, at every iteration, n_r sequences from
    N(mean, std) clamped to [-1, 1] (H, n_pi, n_r and the iterations from the noise's shapes);
    mean starts at zeros (or prev_mean shifted by one step), std at max_std. Each iteration scores
    everything, keeps the num_elites best, sets mean/std to the exp(temperature (G - max G))-weighted
    moments of the elites, blends mean = momentum old + (1 - momentum) new and clamps std to
    [min_std, max_std]. Finally one elite of the last iteration is drawn per env with the same weights.

    z0 (N, d), prev_mean (H, N, A) or None -> (first action (N, A), mean (H, N, A)) - pass the
    mean back as prev_mean at the next step.
    """
    if noise.gaussian is None or noise.gaussian.shape[0] < 1:
        raise ValueError("mppi_plan needs at least one iteration of Gaussian sequences (draw_plan_noise "
                         "with num_random > 0 and iterations >= 1)")
    horizon = noise.policy.shape[0]
    pi_actions, pi_scores = _policy_sequences(model, z0, noise.policy, gamma)   # (H, N, P, A), (N, P)
    mean = _initial_mean(z0, horizon, model.act_dim, prev_mean)                 # (H, N, A)
    std = torch.full_like(mean, max_std)                                         # (H, N, A)
    for eps in noise.gaussian:                                                   # (H, N, R, A) per iteration
        random_actions = _gaussian_sequences(mean, std, eps)                     # (H, N, R, A)
        random_scores = score_sequences(model, z0, random_actions, gamma)        # (N, R)
        # the policy sequences and the model are fixed, so their scores are computed once
        actions = torch.cat([random_actions, pi_actions], dim=2)                 # (H, N, S, A)
        scores = torch.cat([random_scores, pi_scores], dim=1)                    # (N, S)
        elite_scores, elite_index = _top_elites(scores, num_elites)              # (N, K)
        elite_actions = _gather_samples(actions, elite_index, dim=2)             # (H, N, K, A)
        weights = _elite_weights(elite_scores, temperature)                      # (N, K)
        new_mean, new_std = _weighted_moments(elite_actions, weights)            # (H, N, A)
        mean = momentum * mean + (1.0 - momentum) * new_mean
        std = new_std.clamp(min_std, max_std)
    choice = _draw(weights, noise.choice)                                        # (N, 1) index into K
    first_action = _gather_samples(elite_actions[0], choice, dim=1).squeeze(1)   # (N, A)
    return first_action, mean


def plan_mppi(model: PlanningModel, z0: Tensor, *, horizon: int, num_pi_samples: int = 25,
              num_random: int = 487, iterations: int = 6, num_elites: int = 64, momentum: float = 0.1,
              temperature: float = 0.5, min_std: float = 0.05, max_std: float = 2.0, gamma: float = 0.99,
              generator: torch.Generator, prev_mean: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """mppi_plan with its noise drawn from `generator`."""
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    if num_random < 1:
        raise ValueError(f"num_random must be >= 1, got {num_random}")
    noise = draw_plan_noise(model, z0, horizon=horizon, num_pi_samples=num_pi_samples, num_elites=num_elites,
                            generator=generator, num_random=num_random, iterations=iterations)
    return mppi_plan(model, z0, noise, num_elites=num_elites, momentum=momentum, temperature=temperature,
                     min_std=min_std, max_std=max_std, gamma=gamma, prev_mean=prev_mean)
