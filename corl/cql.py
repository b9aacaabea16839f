"""Conservative Q-Learning (CORL's continuous cql.py, Kumar et al. 2020): SAC with automatic entropy
tuning whose twin critics are also pushed down on out-of-distribution actions, by
cql_alpha * (temp * logsumexp(Q(s, a~mu) / temp) - Q(s, a_data)), optionally with a Lagrange
multiplier alpha' that keeps that gap near cql_target_action_gap.

    python -m corl.cql --env maze2d-umaze-v1 --intent manager
    python -m corl.cql --help

The plugin is reached through exactly two lines, marked with the PLUGIN(intents) comment.

What follows CORL exactly:
- Policy: tanh-Gaussian, an MLP of 3 hidden layers of 256 giving (mean, log_std) per action
  dimension; log_std = m * log_std + c with two learnable scalars (m = policy_log_std_multiplier,
  c = -1 at the start) clamped to [-20, 2]; a = max_action * tanh(u), u ~ N(mean, std)
  (reparameterised) and log pi(a|s) the tanh-corrected Gaussian density summed over dimensions.
  Its own init whatever orthogonal_init says: PyTorch's default for the hidden layers, the last
  layer xavier-uniform with gain 1e-2 and zero bias. Evaluation acts with max_action * tanh(mean).
- Critics: two Q(s, a) MLPs of q_n_hidden_layers hidden layers of 256 with Polyak targets
  (soft_target_update_rate, every target_update_period updates); orthogonal_init: hidden layers
  orthogonal with gain sqrt(2), the last layer orthogonal with gain 1e-2, zero biases (without
  it: PyTorch's default, the last layer xavier-uniform with gain 1e-2).
- Entropy: log_alpha (0 at the start, Adam at policy_lr) minimises
  -mean(log_alpha * (log pi + target_entropy)) with target_entropy = -action_dim;
  alpha = exp(log_alpha) * alpha_multiplier (or alpha_multiplier without automatic tuning).
- Actor loss mean(alpha log pi(a~|s) - min(Q1, Q2)(s, a~)); for the first bc_steps updates
  mean(alpha log pi(a~|s) - log pi(a_data|s)) instead (see the choices below for how CORL differs).
- Critic target: r + discount (1 - done) min(Q1', Q2')(s', a'~pi(s')); with cql_max_target_backup
  the max over cql_n_actions sampled a' (and its log-prob); minus alpha * log pi(a'|s') when
  backup_entropy.
- Conservative term per critic: cql_n_actions uniform(-1, 1) actions, cql_n_actions policy actions
  at s and at s' (all evaluated at s, detached); with cql_importance_sample the logsumexp runs over
  [Q_rand - log(0.5^act), Q_next - log pi_next, Q_cur - log pi_cur] (3N terms), without it over
  [Q_rand, Q(s, a_data), Q_next, Q_cur] (3N + 1 terms); diff = mean(clamp(temp * logsumexp(./temp)
  - Q(s, a_data), cql_clip_diff_min, cql_clip_diff_max)). Penalty cql_alpha * diff, or with
  cql_lagrange alpha' * cql_alpha * (diff - cql_target_action_gap), alpha' = clamp(exp(log_alpha'),
  0, 1e6), log_alpha' = 1 at the start, Adam at qf_lr on -(penalty_1 + penalty_2) / 2.
- Critic loss MSE(Q1, y) + MSE(Q2, y) + penalty_1 + penalty_2; Adam at qf_lr, actor at policy_lr.
- One update: alpha step, actor step, (alpha' step), critic step, then the targets; every loss is
  computed from the networks as they were before the update's first step.
- Reward handling with normalize_reward: locomotion x 1000 / return range, then for every domain
  r * reward_scale + reward_bias (antmaze: r * 10 - 5; CQL does NOT use the other workers' r - 1).
- Defaults are CORL's TrainConfig (policy_lr 3e-5, qf_lr 3e-4, cql_alpha 10, cql_n_actions 10,
  importance sampling on, lagrange off, gap -1, temp 1, clip diffs +-inf, orthogonal_init true,
  q_n_hidden_layers 3, bc_steps 0, reward_scale 5, reward_bias -1, normalize true,
  normalize_reward false); per-domain values are in corl/presets/cql/.

Choices (where this project differs or had to decide):
- CORL @ eeeeef2 builds its second critic without q_n_hidden_layers (so on antmaze, 5 layers for
  Q1 and 3 for Q2); later CORL versions pass it to both. Here both critics have q_n_hidden_layers.
- cql_alpha keeps CORL's name at eeeeef2 (older CQL code calls it cql_min_q_weight).
- No host syncs in update(): the bc_steps switch and the target-update period test a python step
  counter; lagrange, importance sampling and max-target backup are config switches (python bools);
  no `.item()`. alpha and alpha' are detached where they only scale other losses (CORL lets their
  gradients reach log_alpha / log_alpha' and then discards them with the next zero_grad); alpha'
  is fitted on the detached diffs (CORL's separate backward reaches the critics' grads, which its
  critic zero_grad then clears): the same updates.
- One backward pass: CORL calls backward three or four times (alpha, actor, alpha', critics), each
  followed by its optimiser's step. Here the four losses reach disjoint parameters (the policy
  loss's min Q runs through detached critic weights, so its gradient reaches the actor only, as
  CORL's does once its critic zero_grad has cleared the rest), so one backward pass of their sum
  gives every optimiser the same gradients, and the steps follow in CORL's order (every loss is
  computed before any step, in CORL as here). The update's draws come first, from the global
  generator in CORL's order (`draw_noise`), and `_losses` is a pure function of them: one graph
  for `--compile` (corl/shared/compiled.py). Checked: the same numbers, bit for bit, as the
  earlier one-backward-per-loss code on every switch combination.
- Metrics: update() returns a fixed set of detached 0-d tensors (losses, alpha, alpha', the
  conservative diffs, mean Q); CORL's std-of-Q logs are left out.
- state_dict() also holds log_alpha, log_alpha' and all five optimisers, loaded in place (CORL's
  load_state_dict swaps the log-alpha modules out from under their optimisers).
- `buffer_size`, `eval_freq`, `n_episodes`, `max_timesteps` are not fields: the buffer holds the
  dataset and the run size comes from the shared profile; evaluation is seeded by `seed`.
- bc_steps: the BC loss here uses log pi(a_data|s) of the DATASET actions, as the option means.
  CORL @ eeeeef2's TanhGaussianPolicy.log_prob ignores its `actions` argument and returns the
  log-prob of a fresh policy sample, so its "BC" phase is not behaviour cloning (every CORL preset
  has bc_steps 0, so no CORL result depends on it). The dataset action is divided by max_action
  and clipped to +-(1 - 1e-6) before atanh, so an action on the bound gives a finite loss.
- Checked against CORL's classes (outside the repo): with the same weights and random draws, five
  updates of every switch combination above (bc_steps 0) agree to ~1e-6.
"""
# (no `from __future__ import annotations`: pyrallis needs evaluated field types)

import math
import sys
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from common.cli import config_field as field
from common.nn_ops import call_frozen
from corl.shared.compiled import CompiledLosses
from corl.shared.config import WorkerConfig, worker_main
from corl.shared.data import LOCOMOTION, load_transitions, modify_reward
from corl.shared.losses import td_target
from corl.shared.nets import QNetwork, mlp, soft_update
from corl.shared.run import WorkerRun
from wrappers import augment, wrap_env

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
ALPHA_PRIME_MAX = 1e6
ATANH_EPS = 1e-6  # dataset actions on the bound stay invertible


@dataclass
class CQLConfig(WorkerConfig):
    algo: str = field("cql", "algorithm name")
    batch_size: int = field(256, "training batch size")
    discount: float = field(0.99, "discount factor")
    alpha_multiplier: float = field(1.0, "multiplier of the entropy temperature alpha (alpha itself without tuning)")
    use_automatic_entropy_tuning: bool = field(True, "tune alpha towards the target entropy -action_dim")
    backup_entropy: bool = field(False, "subtract alpha * log pi(a'|s') in the critic target")
    policy_lr: float = field(3e-5, "Adam learning rate of the policy and of log_alpha")
    qf_lr: float = field(3e-4, "Adam learning rate of the critics and of log_alpha' (Lagrange)")
    soft_target_update_rate: float = field(5e-3, "Polyak coefficient of the target critics")
    target_update_period: int = field(1, "update the target critics every this many updates")
    cql_n_actions: int = field(10, "actions sampled per state (each of random / current / next) for the "
                                   "conservative term and the max-target backup")
    cql_importance_sample: bool = field(True, "importance-weight the sampled actions by their densities")
    cql_lagrange: bool = field(False, "tune the conservative weight alpha' to keep the gap at cql_target_action_gap")
    cql_target_action_gap: float = field(-1.0, "target of the conservative gap (Lagrange version)")
    cql_temp: float = field(1.0, "temperature of the logsumexp over sampled actions")
    cql_alpha: float = field(10.0, "weight of the conservative term (CQL's min-Q weight)")
    cql_max_target_backup: bool = field(False, "critic target: max over cql_n_actions sampled next actions")
    cql_clip_diff_min: float = field(-np.inf, "lower clip of the conservative gap per state")
    cql_clip_diff_max: float = field(np.inf, "upper clip of the conservative gap per state")
    orthogonal_init: bool = field(True, "orthogonal initialisation of the critics")
    normalize: bool = field(True, "normalise states with the dataset's mean and std")
    normalize_reward: bool = field(False, "CQL's reward handling: (locomotion x 1000 / return range) then "
                                          "r * reward_scale + reward_bias")
    q_n_hidden_layers: int = field(3, "hidden layers of each critic")
    bc_steps: int = field(0, "behaviour-cloning actor loss for the first this many updates")
    reward_scale: float = field(5.0, "reward scale of normalize_reward")
    reward_bias: float = field(-1.0, "reward bias of normalize_reward")
    policy_log_std_multiplier: float = field(1.0, "initial value of the policy's learnable log-std multiplier")


# --- data ---------------------------------------------------------------------------------------
def cql_modify_reward(dataset: dict[str, np.ndarray], env: str, reward_scale: float, reward_bias: float,
                      max_episode_steps: int = 1000) -> dict[str, np.ndarray]:
    """CORL CQL's reward handling: locomotion rewards x 1000 / (max return - min return) (the shared
    modify_reward), then r * reward_scale + reward_bias on every domain (antmaze preset: r * 10 - 5,
    NOT the other workers' r - 1). Returns a new dict."""
    out = modify_reward(dataset, env, max_episode_steps) if any(n in env for n in LOCOMOTION) else dict(dataset)
    out["rewards"] = (out["rewards"] * reward_scale + reward_bias).astype(np.float32)
    return out


# --- networks -----------------------------------------------------------------------------------
def init_module_weights(net: nn.Sequential, orthogonal_init: bool) -> None:
    """CORL's init: orthogonal (gain sqrt 2, zero bias) hidden layers if orthogonal_init; the last
    layer orthogonal (orthogonal_init) or xavier-uniform, gain 1e-2, zero bias."""
    if orthogonal_init:
        for layer in net[:-1]:
            if isinstance(layer, nn.Linear):
                nn.init.orthogonal_(layer.weight, gain=math.sqrt(2))
                nn.init.zeros_(layer.bias)
        nn.init.orthogonal_(net[-1].weight, gain=1e-2)
    else:
        nn.init.xavier_uniform_(net[-1].weight, gain=1e-2)
    nn.init.zeros_(net[-1].bias)


def make_critic(state_dim: int, action_dim: int, n_hidden: int, orthogonal_init: bool) -> QNetwork:
    critic = QNetwork(state_dim, action_dim, hidden_dim=256, n_hidden=n_hidden)
    init_module_weights(critic.net, orthogonal_init)
    return critic


def tanh_gaussian_log_prob(pre_tanh: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """log density of a = tanh(u), u ~ N(mean, exp(log_std)), at u = pre_tanh, summed over the last
    dimension: log N(u) - log(1 - tanh(u)^2), the latter as 2 (log 2 - u - softplus(-2u))."""
    normal = -((pre_tanh - mean) ** 2) / (2 * torch.exp(2 * log_std)) - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return (normal - log_det).sum(-1)


class TanhGaussianPolicy(nn.Module):
    def __init__(self, state_dim: int, action_dim: int, max_action: float, log_std_multiplier: float = 1.0,
                 log_std_offset: float = -1.0):
        super().__init__()
        self.action_dim, self.max_action = action_dim, max_action
        self.base_network = mlp([state_dim, 256, 256, 256, 2 * action_dim])
        init_module_weights(self.base_network, orthogonal_init=False)  # CORL: never orthogonal for the policy
        self.log_std_multiplier = nn.Parameter(torch.tensor(log_std_multiplier, dtype=torch.float32))
        self.log_std_offset = nn.Parameter(torch.tensor(log_std_offset, dtype=torch.float32))

    def _mean_log_std(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = torch.split(self.base_network(observations), self.action_dim, dim=-1)
        log_std = (self.log_std_multiplier * log_std + self.log_std_offset).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std

    def forward(self, observations: Tensor, deterministic: bool = False, repeat: Optional[int] = None,
                noise: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        """Actions (B, act) and log pi (B,); with repeat=N, N samples per state: (B, N, act), (B, N).
        noise: the standard normal draw of the sample (the actions' shape), drawn here if None."""
        if repeat is not None:
            observations = observations.unsqueeze(1).expand(-1, repeat, -1)  # (B, N, obs)
        mean, log_std = self._mean_log_std(observations)
        if not deterministic:
            noise = torch.randn_like(mean) if noise is None else noise
        pre_tanh = mean if deterministic else mean + torch.exp(log_std) * noise
        return self.max_action * torch.tanh(pre_tanh), tanh_gaussian_log_prob(pre_tanh, mean, log_std)

    def log_prob(self, observations: Tensor, actions: Tensor) -> Tensor:
        """log pi(a|s) of given actions (B, act) -> (B,) or (B, N, act) -> (B, N)."""
        if actions.dim() == 3:
            observations = observations.unsqueeze(1).expand(-1, actions.shape[1], -1)  # (B, N, obs)
        mean, log_std = self._mean_log_std(observations)
        pre_tanh = torch.atanh((actions / self.max_action).clamp(-1.0 + ATANH_EPS, 1.0 - ATANH_EPS))
        return tanh_gaussian_log_prob(pre_tanh, mean, log_std)


# --- losses -------------------------------------------------------------------------------------
def entropy_alpha_loss(log_alpha: Tensor, log_pi: Tensor, target_entropy: float) -> Tensor:
    """SAC's temperature loss -mean(log_alpha * (log pi + target_entropy)): alpha grows while the
    policy's entropy -log pi is below the target."""
    return -(log_alpha * (log_pi + target_entropy).detach()).mean()


def sac_policy_loss(alpha: Tensor, log_pi: Tensor, value: Tensor) -> Tensor:
    """mean(alpha * log pi - value); value = min Q(s, a~) (or log pi(a_data|s) during bc_steps)."""
    return (alpha * log_pi - value).mean()


def max_target_backup(target_q: Tensor, next_log_pi: Tensor) -> tuple[Tensor, Tensor]:
    """Per state, the largest target Q over N sampled next actions, and that action's log pi.
    target_q, next_log_pi: (B, N) -> (B,), (B,)."""
    best_q, best = target_q.max(dim=-1)
    return best_q, next_log_pi.gather(-1, best.unsqueeze(-1)).squeeze(-1)


def cql_sampled_q(q_rand: Tensor, q_data: Tensor, q_next: Tensor, q_current: Tensor, next_log_pi: Tensor,
                  current_log_pi: Tensor, action_dim: int, importance_sample: bool) -> Tensor:
    """The Q values the conservative logsumexp runs over, per state. q_rand, q_next, q_current and
    the log-pis: (B, N); q_data: (B,). With importance sampling (B, 3N): each sampled Q minus the log
    density of its proposal (uniform on [-1, 1]^act: act * log 0.5; the policy: log pi); without
    (B, 3N + 1): [Q_rand, Q_data, Q_next, Q_current] as they are."""
    if importance_sample:
        random_density = action_dim * math.log(0.5)  # log(0.5 ** act)
        return torch.cat([q_rand - random_density, q_next - next_log_pi, q_current - current_log_pi], dim=1)
    return torch.cat([q_rand, q_data.unsqueeze(1), q_next, q_current], dim=1)


def conservative_diff(sampled_q: Tensor, q_data: Tensor, temp: float, clip_min: float, clip_max: float) -> Tensor:
    """mean over states of clamp(temp * logsumexp(sampled_q / temp) - Q(s, a_data), clip_min, clip_max).
    sampled_q: (B, M); q_data: (B,)."""
    ood = torch.logsumexp(sampled_q / temp, dim=1) * temp  # (B,)
    return torch.clamp(ood - q_data, clip_min, clip_max).mean()


def lagrange_multiplier(log_alpha_prime: Tensor) -> Tensor:
    """alpha' = clamp(exp(log_alpha'), 0, 1e6)."""
    return torch.clamp(torch.exp(log_alpha_prime), min=0.0, max=ALPHA_PRIME_MAX)


def conservative_penalty(diff: Tensor, cql_alpha: float, alpha_prime: Optional[Tensor] = None,
                         target_action_gap: float = 0.0) -> Tensor:
    """cql_alpha * diff, or with a Lagrange multiplier alpha' * cql_alpha * (diff - target_action_gap)."""
    if alpha_prime is None:
        return cql_alpha * diff
    return alpha_prime * cql_alpha * (diff - target_action_gap)


def alpha_prime_loss(log_alpha_prime: Tensor, diff_1: Tensor, diff_2: Tensor, cql_alpha: float,
                     target_action_gap: float) -> Tensor:
    """-(penalty_1 + penalty_2) / 2 as a function of log_alpha' only (diffs detached): gradient
    descent raises alpha' while the gap exceeds target_action_gap and lowers it otherwise."""
    alpha_prime = lagrange_multiplier(log_alpha_prime)
    return -0.5 * (conservative_penalty(diff_1.detach(), cql_alpha, alpha_prime, target_action_gap)
                   + conservative_penalty(diff_2.detach(), cql_alpha, alpha_prime, target_action_gap))


# --- the algorithm ------------------------------------------------------------------------------
class CQLNoise(NamedTuple):
    """One update's random draws (standard normal unless said otherwise)."""

    policy: Tensor  # (B, act) the policy sample at s (alpha and the policy loss)
    target: Tensor  # (B, act), or (B, N, act) with cql_max_target_backup: a' at s'
    uniform: Tensor  # (B, N, act) uniform(-1, 1) actions of the conservative term
    current: Tensor  # (B, N, act) the N policy samples at s
    next: Tensor  # (B, N, act) the N policy samples at s'


class ContinuousCQL(CompiledLosses):
    LOSS_METHODS = ("_losses",)  # --compile: torch.compile'd (corl/shared/compiled.py)
    STATE = ("actor", "critic_1", "critic_2", "target_critic_1", "target_critic_2", "actor_optimizer",
             "critic_1_optimizer", "critic_2_optimizer", "alpha_optimizer", "alpha_prime_optimizer")

    def __init__(self, actor: TanhGaussianPolicy, critic_1: QNetwork, critic_2: QNetwork, target_entropy: float,
                 discount: float = 0.99, alpha_multiplier: float = 1.0, use_automatic_entropy_tuning: bool = True,
                 backup_entropy: bool = False, policy_lr: float = 3e-5, qf_lr: float = 3e-4,
                 soft_target_update_rate: float = 5e-3, bc_steps: int = 0, target_update_period: int = 1,
                 cql_n_actions: int = 10, cql_importance_sample: bool = True, cql_lagrange: bool = False,
                 cql_target_action_gap: float = -1.0, cql_temp: float = 1.0, cql_alpha: float = 10.0,
                 cql_max_target_backup: bool = False, cql_clip_diff_min: float = -np.inf,
                 cql_clip_diff_max: float = np.inf):
        device = next(critic_1.parameters()).device
        self.actor, self.critic_1, self.critic_2 = actor, critic_1, critic_2
        self.target_critic_1 = deepcopy(critic_1).requires_grad_(False)
        self.target_critic_2 = deepcopy(critic_2).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(actor.parameters(), lr=policy_lr)
        self.critic_1_optimizer = torch.optim.Adam(critic_1.parameters(), lr=qf_lr)
        self.critic_2_optimizer = torch.optim.Adam(critic_2.parameters(), lr=qf_lr)
        self.log_alpha = nn.Parameter(torch.zeros((), device=device))  # used only with automatic tuning
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=policy_lr)
        self.fixed_alpha = torch.tensor(alpha_multiplier, device=device)  # alpha without automatic tuning
        self.log_alpha_prime = nn.Parameter(torch.ones((), device=device))  # used only with cql_lagrange
        self.alpha_prime_optimizer = torch.optim.Adam([self.log_alpha_prime], lr=qf_lr)
        self.target_entropy, self.discount, self.alpha_multiplier = target_entropy, discount, alpha_multiplier
        self.use_automatic_entropy_tuning, self.backup_entropy = use_automatic_entropy_tuning, backup_entropy
        self.soft_target_update_rate, self.target_update_period = soft_target_update_rate, target_update_period
        self.bc_steps = bc_steps
        self.cql_n_actions, self.cql_importance_sample = cql_n_actions, cql_importance_sample
        self.cql_lagrange, self.cql_target_action_gap = cql_lagrange, cql_target_action_gap
        self.cql_temp, self.cql_alpha, self.cql_max_target_backup = cql_temp, cql_alpha, cql_max_target_backup
        self.cql_clip_diff_min, self.cql_clip_diff_max = cql_clip_diff_min, cql_clip_diff_max
        self.total_it = 0

    def _target_q(self, next_observations: Tensor, alpha: Tensor, noise: Tensor) -> Tensor:
        """min(Q1', Q2')(s', a' ~ pi(s')) (or its max over cql_n_actions samples), minus alpha log pi
        with backup_entropy: (B,). noise: the draw of a', (B, act) or (B, N, act)."""
        if self.cql_max_target_backup:
            next_actions, next_log_pi = self.actor(next_observations, repeat=self.cql_n_actions, noise=noise)
            target_q, next_log_pi = max_target_backup(
                torch.min(self.target_critic_1(next_observations, next_actions),
                          self.target_critic_2(next_observations, next_actions)), next_log_pi)  # (B,), (B,)
        else:
            next_actions, next_log_pi = self.actor(next_observations, noise=noise)  # (B, act), (B,)
            target_q = torch.min(self.target_critic_1(next_observations, next_actions),
                                 self.target_critic_2(next_observations, next_actions))
        if self.backup_entropy:
            target_q = target_q - alpha * next_log_pi
        return target_q

    def draw_noise(self, actions: Tensor) -> CQLNoise:
        """The update's draws from the global generator, in CORL's order: the policy sample at s, a'
        at s', the uniform actions, the N policy samples at s and at s'."""
        batch_size, action_dim = actions.shape
        n = self.cql_n_actions
        repeated = (batch_size, n, action_dim)
        policy = torch.randn_like(actions)  # (B, act)
        target = actions.new_empty(repeated).normal_() if self.cql_max_target_backup else torch.randn_like(actions)
        uniform = actions.new_empty(repeated).uniform_(-1, 1)  # (B, N, act)
        return CQLNoise(policy, target, uniform, actions.new_empty(repeated).normal_(),
                        actions.new_empty(repeated).normal_())

    def _losses(self, observations: Tensor, actions: Tensor, rewards: Tensor, next_observations: Tensor,
                dones: Tensor, noise: CQLNoise, bc_value: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """The sum of the update's four losses and its metrics (all 0-d), from the weights as they are
        (a pure function of its arguments: the draws in `noise`, bc_value = whether this step is a
        bc_steps step). The four losses reach disjoint parameters (alpha_loss log_alpha, policy_loss
        the actor, alpha_prime_loss log_alpha', qf_loss the critics), so one backward pass of their
        sum gives each optimiser CORL's gradients."""
        batch_size, action_dim = actions.shape
        n = self.cql_n_actions

        # alpha and the policy loss
        new_actions, log_pi = self.actor(observations, noise=noise.policy)  # (B, act), (B,)
        if self.use_automatic_entropy_tuning:
            alpha_loss = entropy_alpha_loss(self.log_alpha, log_pi, self.target_entropy)
            alpha = self.log_alpha.detach().exp() * self.alpha_multiplier
        else:
            alpha_loss = observations.new_zeros(())
            alpha = self.fixed_alpha
        if bc_value:
            value = self.actor.log_prob(observations, actions)  # (B,)
        else:
            # through detached critic weights: the gradient reaches the actions (the actor), never the critics
            value = torch.min(call_frozen(self.critic_1, observations, new_actions),
                              call_frozen(self.critic_2, observations, new_actions))  # (B,)
        policy_loss = sac_policy_loss(alpha, log_pi, value)

        # TD losses
        q1_predicted = self.critic_1(observations, actions)  # (B,)
        q2_predicted = self.critic_2(observations, actions)
        with torch.no_grad():
            target_q = self._target_q(next_observations, alpha, noise.target)  # (B,)
            y = td_target(rewards.squeeze(-1), dones.squeeze(-1), target_q, self.discount)
        qf1_loss, qf2_loss = F.mse_loss(q1_predicted, y), F.mse_loss(q2_predicted, y)

        # the conservative term
        with torch.no_grad():
            current_actions, current_log_pi = self.actor(observations, repeat=n, noise=noise.current)  # (B, N, act), (B, N)
            next_actions, next_log_pi = self.actor(next_observations, repeat=n, noise=noise.next)
        diffs = []
        for critic, q_data in ((self.critic_1, q1_predicted), (self.critic_2, q2_predicted)):
            sampled = cql_sampled_q(critic(observations, noise.uniform), q_data,
                                    critic(observations, next_actions), critic(observations, current_actions),
                                    next_log_pi, current_log_pi, action_dim, self.cql_importance_sample)
            diffs.append(conservative_diff(sampled, q_data, self.cql_temp, self.cql_clip_diff_min,
                                           self.cql_clip_diff_max))
        if self.cql_lagrange:
            alpha_prime = lagrange_multiplier(self.log_alpha_prime.detach())
            a_prime_loss = alpha_prime_loss(self.log_alpha_prime, diffs[0], diffs[1], self.cql_alpha,
                                            self.cql_target_action_gap)
            penalties = [conservative_penalty(d, self.cql_alpha, alpha_prime, self.cql_target_action_gap)
                         for d in diffs]
        else:
            alpha_prime = a_prime_loss = observations.new_zeros(())
            penalties = [conservative_penalty(d, self.cql_alpha) for d in diffs]
        qf_loss = qf1_loss + qf2_loss + penalties[0] + penalties[1]
        metrics = {"policy_loss": policy_loss, "alpha_loss": alpha_loss, "alpha": alpha, "log_pi": log_pi.mean(),
                   "qf1_loss": qf1_loss, "qf2_loss": qf2_loss, "cql_min_qf1_loss": penalties[0],
                   "cql_min_qf2_loss": penalties[1], "cql_qf1_diff": diffs[0], "cql_qf2_diff": diffs[1],
                   "alpha_prime": alpha_prime, "alpha_prime_loss": a_prime_loss,
                   "average_qf1": q1_predicted.mean(), "average_target_q": target_q.mean()}
        return alpha_loss + policy_loss + a_prime_loss + qf_loss, metrics

    def update(self, batch: list[Tensor]) -> dict[str, Tensor]:
        self.total_it += 1
        observations, actions, rewards, next_observations, dones = batch
        bc_value = self.total_it <= self.bc_steps  # python counter: no host sync
        total_loss, metrics = self._losses(observations, actions, rewards, next_observations, dones,
                                           self.draw_noise(actions), bc_value)

        # one backward pass (the losses reach disjoint parameters), then the steps in CORL's order
        for optimizer in (self.alpha_optimizer, self.actor_optimizer, self.alpha_prime_optimizer,
                          self.critic_1_optimizer, self.critic_2_optimizer):
            optimizer.zero_grad(set_to_none=True)
        total_loss.backward()
        if self.use_automatic_entropy_tuning:
            self.alpha_optimizer.step()
        self.actor_optimizer.step()
        if self.cql_lagrange:
            self.alpha_prime_optimizer.step()
        self.critic_1_optimizer.step()
        self.critic_2_optimizer.step()
        if self.total_it % self.target_update_period == 0:
            soft_update(self.target_critic_1, self.critic_1, self.soft_target_update_rate)
            soft_update(self.target_critic_2, self.critic_2, self.soft_target_update_rate)
        return {k: v.detach() for k, v in metrics.items()}

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Deterministic evaluation action max_action * tanh(mean)."""
        return self.actor(obs, deterministic=True)[0]

    def state_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name).state_dict() for name in self.STATE},
                "log_alpha": self.log_alpha.detach().clone(), "log_alpha_prime": self.log_alpha_prime.detach().clone(),
                "total_it": self.total_it}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.STATE:
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():  # in place: the optimisers keep holding these very parameters
            self.log_alpha.copy_(state["log_alpha"])
            self.log_alpha_prime.copy_(state["log_alpha_prime"])
        self.total_it = int(state["total_it"])


def build_algo(cfg: CQLConfig, state_dim: int, action_dim: int, max_action: float,
               device: str | torch.device) -> ContinuousCQL:
    """The networks and the algorithm of one run (also used by benchmarks/worker_speed.py)."""
    critic_1 = make_critic(state_dim, action_dim, cfg.q_n_hidden_layers, cfg.orthogonal_init).to(device)
    critic_2 = make_critic(state_dim, action_dim, cfg.q_n_hidden_layers, cfg.orthogonal_init).to(device)
    actor = TanhGaussianPolicy(state_dim, action_dim, max_action,
                               log_std_multiplier=cfg.policy_log_std_multiplier).to(device)
    return ContinuousCQL(
        actor, critic_1, critic_2, target_entropy=-float(action_dim), discount=cfg.discount,
        alpha_multiplier=cfg.alpha_multiplier, use_automatic_entropy_tuning=cfg.use_automatic_entropy_tuning,
        backup_entropy=cfg.backup_entropy, policy_lr=cfg.policy_lr, qf_lr=cfg.qf_lr,
        soft_target_update_rate=cfg.soft_target_update_rate, bc_steps=cfg.bc_steps,
        target_update_period=cfg.target_update_period, cql_n_actions=cfg.cql_n_actions,
        cql_importance_sample=cfg.cql_importance_sample, cql_lagrange=cfg.cql_lagrange,
        cql_target_action_gap=cfg.cql_target_action_gap, cql_temp=cfg.cql_temp, cql_alpha=cfg.cql_alpha,
        cql_max_target_backup=cfg.cql_max_target_backup, cql_clip_diff_min=cfg.cql_clip_diff_min,
        cql_clip_diff_max=cfg.cql_clip_diff_max)


def train(cfg: CQLConfig) -> dict[str, Any] | None:
    run = WorkerRun(cfg)
    cfg = run.cfg
    dataset = load_transitions(cfg.env, cfg.data_dir, show_progress=cfg.progress)
    dataset = augment(dataset, run.intents)  # PLUGIN(intents): append g_t to the dataset's states
    if cfg.normalize_reward:
        dataset = cql_modify_reward(dataset, cfg.env, cfg.reward_scale, cfg.reward_bias)
    eval_env = wrap_env(run.make_eval_env(), run.intents)  # PLUGIN(intents): concat(s_t, g_t) at evaluation
    return run.fit(dataset, eval_env, build_algo)


def main(argv: list[str] | None = None) -> int:
    return worker_main(CQLConfig, "cql", train, argv)


if __name__ == "__main__":
    sys.exit(main())
