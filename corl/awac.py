"""Advantage-Weighted Actor-Critic (CORL's awac.py): twin critics trained by TD learning on actions
sampled from the policy, and a Gaussian actor fitted to the dataset's actions weighted by
exp(A(s, a) / awac_lambda), clamped at exp_adv_max.

    python -m corl.awac --env maze2d-umaze-v1 --intent manager
    python -m corl.awac --help

The plugin is reached through exactly two lines, marked with the PLUGIN(intents) comment.

What follows CORL exactly: the actor (3 hidden layers of hidden_dim, a linear mean, one
state-independent log-std parameter clamped to [-20, 2]; sampled actions clamped to the action
bounds; evaluation acts with the mean, unclamped), two critics of 3 hidden layers and their
Polyak-averaged targets, one Adam per network at learning_rate, the update order (critics, then
actor with the freshly updated critics, then both targets), the critic loss
MSE(Q1, y) + MSE(Q2, y) with y = r + gamma (1 - done) min(Q1', Q2')(s', a' ~ pi(s')), the actor
loss mean(-log pi(a|s) * min(exp((Q(s, a) - Q(s, a_pi)) / awac_lambda), exp_adv_max)) with
Q = min(Q1, Q2) and a_pi ~ pi(s), the reward handling (`normalize_reward`: CORL's modify_reward)
and the state mean/std normalisation (eps 1e-3) of observations and next_observations. Defaults
are CORL's TrainConfig (awac_lambda 1.0, lr 3e-4, gamma 0.99, tau 5e-3, batch 256, hidden 256,
normalize_reward false; exp_adv_max 100 is the algorithm's constructor default there); the
per-domain values are in corl/presets/awac/.

Choices (where this project differs or had to decide):
- `normalize` is a switch here (default true); CORL's AWAC always normalises states.
- `exp_adv_max` is a config field here (CORL: a constructor argument, never changed).
- Sampled actions are clamped to the env's action bounds (CORL: its Actor's defaults -1 and 1,
  which are the bounds of every task here).
- state_dict() also holds the target critics and the three optimisers (CORL saves only the
  three networks), so a resumed run equals an uninterrupted one.
- Run size, eval cadence and episodes come from the shared profile (`steps` is CORL's
  num_train_ops); evaluation is seeded by `seed` (CORL: test_seed 69).
"""
# (no `from __future__ import annotations`: pyrallis needs evaluated field types)

import sys
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from common.cli import config_field as field
from corl.shared.compiled import CompiledLosses
from corl.shared.config import WorkerConfig, worker_main
from corl.shared.data import load_transitions, modify_reward
from corl.shared.losses import td_target, twin_critic_loss
from corl.shared.nets import GaussianActor, QNetwork, soft_update
from corl.shared.run import WorkerRun
from wrappers import augment, wrap_env


@dataclass
class AWACConfig(WorkerConfig):
    algo: str = field("awac", "algorithm name")
    hidden_dim: int = field(256, "hidden size of the actor and the critics (3 hidden layers each)")
    learning_rate: float = field(3e-4, "Adam learning rate of the actor and the critics")
    gamma: float = field(0.99, "discount factor")
    tau: float = field(5e-3, "Polyak coefficient of the target critics")
    awac_lambda: float = field(1.0, "actor temperature: weights exp(advantage / awac_lambda); small -> "
                                    "maximise Q, large -> behaviour cloning")
    exp_adv_max: float = field(100.0, "upper clamp of the advantage weights")
    batch_size: int = field(256, "training batch size")
    normalize: bool = field(True, "normalise states with the dataset's mean and std")
    normalize_reward: bool = field(False, "CORL's reward handling (locomotion: x 1000 / return range; antmaze: r - 1)")


def awac_weights(adv: Tensor, awac_lambda: float, exp_adv_max: float) -> Tensor:
    """exp(adv / awac_lambda), clamped from above at exp_adv_max."""
    return torch.clamp_max(torch.exp(adv / awac_lambda), exp_adv_max)


def awac_actor_loss(log_prob: Tensor, weights: Tensor) -> Tensor:
    """Advantage-weighted negative log-likelihood of the dataset actions."""
    return (-log_prob * weights).mean()


class AWAC(CompiledLosses):
    LOSS_METHODS = ("_critic_loss", "_actor_loss")  # --compile: torch.compile'd (corl/shared/compiled.py)

    def __init__(self, actor: GaussianActor, critic_1: QNetwork, critic_2: QNetwork, max_action: float,
                 learning_rate: float, gamma: float, tau: float, awac_lambda: float, exp_adv_max: float):
        self.actor, self.critic_1, self.critic_2 = actor, critic_1, critic_2
        self.target_critic_1 = deepcopy(critic_1).requires_grad_(False)
        self.target_critic_2 = deepcopy(critic_2).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(actor.parameters(), lr=learning_rate)
        self.critic_1_optimizer = torch.optim.Adam(critic_1.parameters(), lr=learning_rate)
        self.critic_2_optimizer = torch.optim.Adam(critic_2.parameters(), lr=learning_rate)
        self.max_action = max_action
        self.gamma, self.tau = gamma, tau
        self.awac_lambda, self.exp_adv_max = awac_lambda, exp_adv_max

    @torch.no_grad()
    def _sample_action(self, states: Tensor, standard_normal: Tensor) -> Tensor:
        """pi(.|s).rsample() from the caller's draw standard_normal (B, act), clamped to the bounds."""
        dist = self.actor(states)
        return (dist.loc + standard_normal * dist.scale).clamp(-self.max_action, self.max_action)  # (B, act)

    def _min_q(self, states: Tensor, actions: Tensor) -> Tensor:
        return torch.min(self.critic_1(states, actions), self.critic_2(states, actions))  # (B,)

    def _critic_loss(self, states, actions, rewards, dones, next_states, standard_normal) -> Tensor:
        with torch.no_grad():
            next_actions = self._sample_action(next_states, standard_normal)
            next_q = torch.min(self.target_critic_1(next_states, next_actions),
                               self.target_critic_2(next_states, next_actions))  # (B,)
            target = td_target(rewards, dones, next_q, self.gamma)
        return twin_critic_loss(self.critic_1(states, actions), self.critic_2(states, actions), target)

    def _actor_loss(self, states: Tensor, actions: Tensor, standard_normal: Tensor) -> Tensor:
        with torch.no_grad():
            v = self._min_q(states, self._sample_action(states, standard_normal))  # (B,)
            adv = self._min_q(states, actions) - v
            weights = awac_weights(adv, self.awac_lambda, self.exp_adv_max)
        return awac_actor_loss(self.actor.log_prob(states, actions), weights)

    def update(self, batch: list[Tensor]) -> dict[str, Tensor]:
        states, actions, rewards, next_states, dones = batch
        rewards, dones = rewards.squeeze(-1), dones.squeeze(-1)  # (B,)
        critic_loss = self._critic_loss(states, actions, rewards, dones, next_states, torch.randn_like(actions))
        self.critic_1_optimizer.zero_grad(set_to_none=True)
        self.critic_2_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_1_optimizer.step()
        self.critic_2_optimizer.step()

        actor_loss = self._actor_loss(states, actions, torch.randn_like(actions))
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()

        soft_update(self.target_critic_1, self.critic_1, self.tau)
        soft_update(self.target_critic_2, self.critic_2, self.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """The policy's mean action (CORL evaluates with the mean, unclamped)."""
        return self.actor(obs).mean

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critic_1": self.critic_1.state_dict(),
                "critic_2": self.critic_2.state_dict(), "target_critic_1": self.target_critic_1.state_dict(),
                "target_critic_2": self.target_critic_2.state_dict(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "critic_1_optimizer": self.critic_1_optimizer.state_dict(),
                "critic_2_optimizer": self.critic_2_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("actor", "critic_1", "critic_2", "target_critic_1", "target_critic_2", "actor_optimizer",
                     "critic_1_optimizer", "critic_2_optimizer"):
            getattr(self, name).load_state_dict(state[name])


def build_algo(cfg: AWACConfig, state_dim: int, action_dim: int, max_action: float,
               device: str | torch.device) -> AWAC:
    """The networks and the algorithm of one run (also used by benchmarks/worker_speed.py)."""
    actor = GaussianActor(state_dim, action_dim, cfg.hidden_dim, n_hidden=3).to(device)
    critic_1 = QNetwork(state_dim, action_dim, cfg.hidden_dim, n_hidden=3).to(device)
    critic_2 = QNetwork(state_dim, action_dim, cfg.hidden_dim, n_hidden=3).to(device)
    return AWAC(actor, critic_1, critic_2, max_action, cfg.learning_rate, cfg.gamma, cfg.tau, cfg.awac_lambda,
                cfg.exp_adv_max)


def train(cfg: AWACConfig) -> dict[str, Any] | None:
    run = WorkerRun(cfg)
    cfg = run.cfg
    dataset = load_transitions(cfg.env, cfg.data_dir, show_progress=cfg.progress)
    dataset = augment(dataset, run.intents)  # PLUGIN(intents): append g_t to the dataset's states
    if cfg.normalize_reward:
        dataset = modify_reward(dataset, cfg.env)
    eval_env = wrap_env(run.make_eval_env(), run.intents)  # PLUGIN(intents): concat(s_t, g_t) at evaluation
    return run.fit(dataset, eval_env, build_algo)


def main(argv: list[str] | None = None) -> int:
    return worker_main(AWACConfig, "awac", train, argv)


if __name__ == "__main__":
    sys.exit(main())
