"""TD3+BC (CORL's td3_bc.py, Fujimoto & Gu 2021): TD3's twin critics with target policy smoothing
and delayed actor updates, and an actor that maximises a normalised Q while staying close to the
dataset's actions: loss = -lambda * mean(Q1(s, pi(s))) + MSE(pi(s), a), lambda = alpha / mean|Q1|.

    python -m corl.td3_bc --env maze2d-umaze-v1 --intent manager
    python -m corl.td3_bc --help

The plugin is reached through exactly two lines, marked with the PLUGIN(intents) comment.

What follows CORL exactly: the networks (a deterministic tanh actor scaled by max_action and two
critics Q(s, a), each 2 hidden layers of 256, with deep-copied targets), one Adam per network at
3e-4 (CORL hard-codes it: not a config field there, a module constant here), the update of one
step (target a' = clamp(pi_target(s') + clamp(N(0, policy_noise), +-noise_clip), +-max_action)
with policy_noise and noise_clip multiplied by max_action; y = r + discount (1 - done)
min(Q1', Q2')(s', a'); critic loss MSE(Q1, y) + MSE(Q2, y); every policy_freq-th step the actor
loss above, with lambda detached, then Polyak updates (tau) of both target critics and the target
actor, and only then), the reward handling (`normalize_reward`: CORL's modify_reward, antmaze
r - 1, locomotion x 1000 / return range) and the state normalisation (eps 1e-3). Defaults are
CORL's TrainConfig (alpha 2.5, discount 0.99, tau 0.005, policy_noise 0.2, noise_clip 0.5,
policy_freq 2, batch 256, normalize true, normalize_reward false); per-domain values are in
corl/presets/td3_bc/.

Choices (where this project differs or had to decide):
- Delayed actor updates without a host sync: the step counter is a python int, so the
  "is this a policy step" test never reads a tensor. The actor loss is COMPUTED on every step (on
  non-policy steps under no_grad: a forward pass of the actor and Q1, no backward, no optimiser
  step) and only APPLIED on policy steps. This keeps the metric keys static, makes `actor_loss` in
  metrics.csv the plain mean over the logged steps of the current actor's loss (no stale value to
  carry through a checkpoint), and costs one extra small forward every other step. The actor's
  update itself is exactly CORL's.
- `expl_noise` and `buffer_size` are not fields here: CORL's TD3+BC never uses expl_noise offline,
  and the replay buffer holds exactly the dataset.
- state_dict() also holds the three target networks (CORL's load_state_dict rebuilds them as
  copies of the online networks, so a resumed CORL run differs from an uninterrupted one).
- Run size, eval cadence and episodes come from the shared profile (`steps` is CORL's
  max_timesteps); evaluation is seeded by `seed`.
- Checked against CORL's TD3_BC class (outside the repo): with the same weights and random draws,
  seven updates agree to ~1e-7.
"""
# (no `from __future__ import annotations`: pyrallis needs evaluated field types)

import sys
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from common.cli import config_field as field
from corl.shared.compiled import CompiledLosses
from corl.shared.config import WorkerConfig, worker_main
from corl.shared.data import load_transitions, modify_reward
from corl.shared.losses import td_target, twin_critic_loss
from corl.shared.nets import DeterministicActor, QNetwork, soft_update
from corl.shared.run import WorkerRun
from wrappers import augment, wrap_env

LEARNING_RATE = 3e-4  # CORL: Adam(lr=3e-4) for the actor and both critics, not configurable


@dataclass
class TD3BCConfig(WorkerConfig):
    algo: str = field("td3_bc", "algorithm name")
    alpha: float = field(2.5, "weight of the normalised Q term in the actor loss (lambda = alpha / mean|Q|); "
                              "small -> behaviour cloning, large -> TD3")
    discount: float = field(0.99, "discount factor")
    tau: float = field(0.005, "Polyak coefficient of the target networks")
    policy_noise: float = field(0.2, "std of the target policy smoothing noise (times max_action)")
    noise_clip: float = field(0.5, "the smoothing noise is clipped to +-noise_clip (times max_action)")
    policy_freq: int = field(2, "update the actor and the targets every this many critic updates")
    batch_size: int = field(256, "training batch size")
    normalize: bool = field(True, "normalise states with the dataset's mean and std")
    normalize_reward: bool = field(False, "CORL's reward handling (locomotion: x 1000 / return range; antmaze: r - 1)")


def smoothing_noise(standard_normal: Tensor, policy_noise: float, noise_clip: float) -> Tensor:
    """TD3's target policy smoothing: clamp(policy_noise * eps, -noise_clip, noise_clip), eps ~ N(0, 1)."""
    return (standard_normal * policy_noise).clamp(-noise_clip, noise_clip)


def smoothed_target_action(target_action: Tensor, noise: Tensor, max_action: float) -> Tensor:
    """pi_target(s') + noise, clamped to the action bounds: (B, act)."""
    return (target_action + noise).clamp(-max_action, max_action)


def td3_bc_actor_loss(pi: Tensor, action: Tensor, q: Tensor, alpha: float) -> Tensor:
    """-lambda * mean(Q(s, pi(s))) + MSE(pi(s), a) with lambda = alpha / mean|Q| (detached, so the
    normalisation only rescales the Q gradient). pi, action: (B, act); q: (B,)."""
    lmbda = alpha / q.abs().mean().detach()
    return -lmbda * q.mean() + F.mse_loss(pi, action)


class TD3BC(CompiledLosses):
    LOSS_METHODS = ("_critic_loss", "_actor_loss")  # --compile: torch.compile'd (corl/shared/compiled.py)
    STATE = ("actor", "actor_target", "critic_1", "critic_1_target", "critic_2", "critic_2_target",
             "actor_optimizer", "critic_1_optimizer", "critic_2_optimizer")  # all saved by state_dict()

    def __init__(self, actor: DeterministicActor, critic_1: QNetwork, critic_2: QNetwork, max_action: float,
                 discount: float, tau: float, policy_noise: float, noise_clip: float, policy_freq: int,
                 alpha: float, lr: float = LEARNING_RATE):
        self.actor, self.critic_1, self.critic_2 = actor, critic_1, critic_2
        self.actor_target = deepcopy(actor).requires_grad_(False)
        self.critic_1_target = deepcopy(critic_1).requires_grad_(False)
        self.critic_2_target = deepcopy(critic_2).requires_grad_(False)
        self.actor_optimizer = torch.optim.Adam(actor.parameters(), lr=lr)
        self.critic_1_optimizer = torch.optim.Adam(critic_1.parameters(), lr=lr)
        self.critic_2_optimizer = torch.optim.Adam(critic_2.parameters(), lr=lr)
        self.max_action, self.discount, self.tau = max_action, discount, tau
        self.policy_noise, self.noise_clip = policy_noise, noise_clip  # already times max_action
        self.policy_freq, self.alpha = policy_freq, alpha
        self.total_it = 0

    def _critic_loss(self, state: Tensor, action: Tensor, reward: Tensor, next_state: Tensor, done: Tensor,
                     standard_normal: Tensor) -> Tensor:
        """MSE(Q1, y) + MSE(Q2, y), y from the smoothed target action (standard_normal: (B, act), drawn
        by the caller)."""
        with torch.no_grad():
            noise = smoothing_noise(standard_normal, self.policy_noise, self.noise_clip)  # (B, act)
            next_action = smoothed_target_action(self.actor_target(next_state), noise, self.max_action)
            target_q = torch.min(self.critic_1_target(next_state, next_action),
                                 self.critic_2_target(next_state, next_action))  # (B,)
            target_q = td_target(reward.squeeze(-1), done.squeeze(-1), target_q, self.discount)
        return twin_critic_loss(self.critic_1(state, action), self.critic_2(state, action), target_q)

    def _actor_loss(self, state: Tensor, action: Tensor) -> Tensor:
        pi = self.actor(state)  # (B, act)
        return td3_bc_actor_loss(pi, action, self.critic_1(state, pi), self.alpha)

    def update(self, batch: list[Tensor]) -> dict[str, Tensor]:
        self.total_it += 1
        state, action, reward, next_state, done = batch
        critic_loss = self._critic_loss(state, action, reward, next_state, done, torch.randn_like(action))
        self.critic_1_optimizer.zero_grad(set_to_none=True)
        self.critic_2_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_1_optimizer.step()
        self.critic_2_optimizer.step()

        policy_step = self.total_it % self.policy_freq == 0  # python ints: no host sync
        with torch.set_grad_enabled(policy_step):
            actor_loss = self._actor_loss(state, action)
        if policy_step:
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()  # (also fills critic_1's grads; its next zero_grad clears them, as in CORL)
            self.actor_optimizer.step()
            soft_update(self.critic_1_target, self.critic_1, self.tau)
            soft_update(self.critic_2_target, self.critic_2, self.tau)
            soft_update(self.actor_target, self.actor, self.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach()}

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        return self.actor(obs)

    def state_dict(self) -> dict[str, Any]:
        return {**{name: getattr(self, name).state_dict() for name in self.STATE}, "total_it": self.total_it}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self.STATE:
            getattr(self, name).load_state_dict(state[name])
        self.total_it = int(state["total_it"])


def build_algo(cfg: TD3BCConfig, state_dim: int, action_dim: int, max_action: float,
               device: str | torch.device) -> TD3BC:
    """The networks and the algorithm of one run (also used by benchmarks/worker_speed.py)."""
    actor = DeterministicActor(state_dim, action_dim, max_action).to(device)
    critic_1 = QNetwork(state_dim, action_dim).to(device)
    critic_2 = QNetwork(state_dim, action_dim).to(device)
    return TD3BC(actor, critic_1, critic_2, max_action, cfg.discount, cfg.tau,
                 policy_noise=cfg.policy_noise * max_action, noise_clip=cfg.noise_clip * max_action,
                 policy_freq=cfg.policy_freq, alpha=cfg.alpha)


def train(cfg: TD3BCConfig) -> dict[str, Any] | None:
    run = WorkerRun(cfg)
    cfg = run.cfg
    dataset = load_transitions(cfg.env, cfg.data_dir, show_progress=cfg.progress)
    dataset = augment(dataset, run.intents)  # PLUGIN(intents): append g_t to the dataset's states
    if cfg.normalize_reward:
        dataset = modify_reward(dataset, cfg.env)
    eval_env = wrap_env(run.make_eval_env(), run.intents)  # PLUGIN(intents): concat(s_t, g_t) at evaluation
    return run.fit(dataset, eval_env, build_algo)


def main(argv: list[str] | None = None) -> int:
    return worker_main(TD3BCConfig, "td3_bc", train, argv)


if __name__ == "__main__":
    sys.exit(main())
