"""Implicit Q-Learning (CORL's iql.py): a state-value function fitted by expectile regression to
the target twin-Q of the dataset's actions, twin Q functions fitted to r + gamma V(s'), and a policy
extracted by advantage-weighted regression with weights exp(beta * (Q - V)) clamped at 100.

    python -m corl.iql --env maze2d-umaze-v1 --intent manager
    python -m corl.iql --help

The plugin is reached through exactly two lines, marked with the PLUGIN(intents) comment.

What follows CORL exactly: the networks (V, twin Q and the policy, 2 hidden layers of 256; the
Gaussian policy has a tanh mean and one state-independent log-std clamped to [-20, 2]; the
deterministic one (`iql_deterministic`) a tanh output; `actor_dropout` after each hidden
activation of the policy), the update order and targets of one step (V(s') read before the V
step; V fitted with the asymmetric L2 loss |iql_tau - 1(u < 0)| u^2 on u = minQ_target(s, a) - V(s);
Q1, Q2 fitted by the mean of their MSEs to r + discount (1 - done) V(s'); the target twin-Q
Polyak-averaged right after the Q step; the policy loss mean(min(exp(beta u), 100) * bc) with
bc = -log pi(a|s) (Gaussian) or ||pi(s) - a||^2 (deterministic), u from the V step, detached),
Adam at vf_lr, qf_lr and actor_lr, the actor's cosine learning-rate schedule stepped once per
update over the whole run, the reward handling (`normalize_reward`: CORL's modify_reward) and
the state normalisation (eps 1e-3). Evaluation acts with clamp(max_action * mean, +-max_action)
with dropout off. Defaults are CORL's TrainConfig (beta 3, iql_tau 0.7, discount 0.99, tau 5e-3,
batch 256, lrs 3e-4, normalize true, normalize_reward false); per-domain values are in
corl/presets/iql/.

Choices (where this project differs or had to decide):
- The cosine schedule's length is the resolved run length `steps` (CORL: max_timesteps), so a
  profile or --steps change keeps the schedule ending at the last step.
- state_dict() also holds the target twin-Q (CORL's load_state_dict rebuilds it as a copy of Q,
  so a resumed CORL run differs from an uninterrupted one; here it does not).
- Run size, eval cadence and episodes come from the shared profile (`steps` is CORL's
  max_timesteps); evaluation is seeded by `seed`.
"""
# (no `from __future__ import annotations`: pyrallis needs evaluated field types)

import sys
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import CosineAnnealingLR

from common.cli import config_field as field
from corl.shared.compiled import CompiledLosses
from corl.shared.config import WorkerConfig, worker_main
from corl.shared.data import load_transitions, modify_reward
from corl.shared.losses import expectile_loss
from corl.shared.nets import DeterministicActor, GaussianActor, QNetwork, mlp, soft_update
from corl.shared.run import WorkerRun
from wrappers import augment, wrap_env

EXP_ADV_MAX = 100.0


@dataclass
class IQLConfig(WorkerConfig):
    algo: str = field("iql", "algorithm name")
    discount: float = field(0.99, "discount factor")
    tau: float = field(0.005, "Polyak coefficient of the target twin-Q")
    beta: float = field(3.0, "inverse temperature of the actor: weights exp(beta * advantage); small -> "
                             "behaviour cloning, large -> maximise Q")
    iql_tau: float = field(0.7, "expectile of the value loss")
    iql_deterministic: bool = field(False, "deterministic policy (squared-error regression) instead of a Gaussian")
    batch_size: int = field(256, "training batch size")
    normalize: bool = field(True, "normalise states with the dataset's mean and std")
    normalize_reward: bool = field(False, "CORL's reward handling (locomotion: x 1000 / return range; antmaze: r - 1)")
    vf_lr: float = field(3e-4, "Adam learning rate of V")
    qf_lr: float = field(3e-4, "Adam learning rate of the twin Q")
    actor_lr: float = field(3e-4, "initial Adam learning rate of the actor (cosine-annealed over the run)")
    actor_dropout: Optional[float] = field(None, "dropout of the policy's hidden layers (none: no dropout)")


asymmetric_l2_loss = expectile_loss  # CORL's name: mean(|tau - 1(u < 0)| * u^2)


def iql_weights(adv: Tensor, beta: float) -> Tensor:
    """exp(beta * adv), clamped from above at EXP_ADV_MAX."""
    return torch.exp(beta * adv).clamp(max=EXP_ADV_MAX)


def awr_policy_loss(weights: Tensor, bc_losses: Tensor) -> Tensor:
    return torch.mean(weights * bc_losses)


def twin_q_loss(q1: Tensor, q2: Tensor, target: Tensor) -> Tensor:
    """The mean of the two critics' MSEs."""
    return (F.mse_loss(q1, target) + F.mse_loss(q2, target)) / 2


class TwinQ(nn.Module):
    def __init__(self, state_dim: int, action_dim: int, hidden_dim: int = 256, n_hidden: int = 2):
        super().__init__()
        self.q1 = QNetwork(state_dim, action_dim, hidden_dim, n_hidden)
        self.q2 = QNetwork(state_dim, action_dim, hidden_dim, n_hidden)

    def both(self, state: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        return self.q1(state, action), self.q2(state, action)  # (B,), (B,)

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        return torch.min(*self.both(state, action))


class ValueFunction(nn.Module):
    def __init__(self, state_dim: int, hidden_dim: int = 256, n_hidden: int = 2):
        super().__init__()
        self.net = mlp([state_dim, *[hidden_dim] * n_hidden, 1])

    def forward(self, state: Tensor) -> Tensor:
        return self.net(state).squeeze(-1)  # (B,)


def make_actor(state_dim: int, action_dim: int, deterministic: bool, dropout: Optional[float]) -> nn.Module:
    """CORL's DeterministicPolicy (tanh output, scaled by max_action only when acting) or
    GaussianPolicy (tanh mean); 2 hidden layers of 256."""
    if deterministic:
        return DeterministicActor(state_dim, action_dim, max_action=1.0, dropout=dropout)
    return GaussianActor(state_dim, action_dim, n_hidden=2, tanh_mean=True, dropout=dropout)


def bc_losses(actor: nn.Module, states: Tensor, actions: Tensor) -> Tensor:
    """Per-sample behaviour-cloning loss: -log pi(a|s) (Gaussian) or ||pi(s) - a||^2: (B,)."""
    if isinstance(actor, GaussianActor):
        return -actor.log_prob(states, actions)
    return torch.sum((actor(states) - actions) ** 2, dim=1)


class IQL(CompiledLosses):
    LOSS_METHODS = ("_value_loss", "_q_loss", "_actor_loss")  # --compile: torch.compile'd (corl/shared/compiled.py)

    def __init__(self, actor: nn.Module, qf: TwinQ, vf: ValueFunction, max_action: float, max_steps: int,
                 vf_lr: float, qf_lr: float, actor_lr: float, iql_tau: float, beta: float, discount: float,
                 tau: float):
        self.actor, self.qf, self.vf = actor, qf, vf
        self.q_target = deepcopy(qf).requires_grad_(False)
        self.v_optimizer = torch.optim.Adam(vf.parameters(), lr=vf_lr)
        self.q_optimizer = torch.optim.Adam(qf.parameters(), lr=qf_lr)
        self.actor_optimizer = torch.optim.Adam(actor.parameters(), lr=actor_lr)
        self.actor_lr_schedule = CosineAnnealingLR(self.actor_optimizer, max_steps)
        self.max_action = max_action
        self.iql_tau, self.beta, self.discount, self.tau = iql_tau, beta, discount, tau
        self.total_it = 0

    def _value_loss(self, states: Tensor, actions: Tensor, next_states: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """V's expectile loss, with the advantage Q'(s, a) - V(s) (detached, (B,)) and V(s') ((B,),
        before the V step, as CORL) that the other two losses use."""
        with torch.no_grad():
            next_v = self.vf(next_states)  # (B,)
            target_q = self.q_target(states, actions)  # (B,)
        adv = target_q - self.vf(states)  # (B,)
        return asymmetric_l2_loss(adv, self.iql_tau), adv.detach(), next_v

    def _q_loss(self, states: Tensor, actions: Tensor, rewards: Tensor, dones: Tensor, next_v: Tensor) -> Tensor:
        targets = rewards.squeeze(-1) + (1.0 - dones.squeeze(-1)) * self.discount * next_v  # (B,)
        return twin_q_loss(*self.qf.both(states, actions), targets)

    def _actor_loss(self, states: Tensor, actions: Tensor, adv: Tensor) -> Tensor:
        return awr_policy_loss(iql_weights(adv, self.beta), bc_losses(self.actor, states, actions))

    def update(self, batch: list[Tensor]) -> dict[str, Tensor]:
        self.total_it += 1
        states, actions, rewards, next_states, dones = batch
        value_loss, adv, next_v = self._value_loss(states, actions, next_states)
        self.v_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        self.v_optimizer.step()

        q_loss = self._q_loss(states, actions, rewards, dones, next_v)
        self.q_optimizer.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_optimizer.step()
        soft_update(self.q_target, self.qf, self.tau)

        actor_loss = self._actor_loss(states, actions, adv)
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        self.actor_lr_schedule.step()
        return {"value_loss": value_loss.detach(), "q_loss": q_loss.detach(), "actor_loss": actor_loss.detach()}

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Deterministic evaluation action: the (mean) output scaled by max_action, dropout off."""
        self.actor.eval()
        out = self.actor(obs)
        self.actor.train()
        mean = out.mean if isinstance(out, torch.distributions.Normal) else out  # (B, act)
        return torch.clamp(self.max_action * mean, -self.max_action, self.max_action)

    def state_dict(self) -> dict[str, Any]:
        return {"qf": self.qf.state_dict(), "q_target": self.q_target.state_dict(),
                "q_optimizer": self.q_optimizer.state_dict(), "vf": self.vf.state_dict(),
                "v_optimizer": self.v_optimizer.state_dict(), "actor": self.actor.state_dict(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "actor_lr_schedule": self.actor_lr_schedule.state_dict(), "total_it": self.total_it}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("qf", "q_target", "q_optimizer", "vf", "v_optimizer", "actor", "actor_optimizer",
                     "actor_lr_schedule"):
            getattr(self, name).load_state_dict(state[name])
        self.total_it = int(state["total_it"])


def build_algo(cfg: IQLConfig, state_dim: int, action_dim: int, max_action: float,
               device: str | torch.device) -> IQL:
    """The networks and the algorithm of one run (also used by benchmarks/worker_speed.py)."""
    qf = TwinQ(state_dim, action_dim).to(device)
    vf = ValueFunction(state_dim).to(device)
    actor = make_actor(state_dim, action_dim, cfg.iql_deterministic, cfg.actor_dropout).to(device)
    return IQL(actor, qf, vf, max_action, cfg.steps, cfg.vf_lr, cfg.qf_lr, cfg.actor_lr, cfg.iql_tau, cfg.beta,
               cfg.discount, cfg.tau)


def train(cfg: IQLConfig) -> dict[str, Any] | None:
    run = WorkerRun(cfg)
    cfg = run.cfg  # steps resolved from the profile: the length of the actor's cosine schedule
    dataset = load_transitions(cfg.env, cfg.data_dir, show_progress=cfg.progress)
    dataset = augment(dataset, run.intents)  # PLUGIN(intents): append g_t to the dataset's states
    if cfg.normalize_reward:
        dataset = modify_reward(dataset, cfg.env)
    eval_env = wrap_env(run.make_eval_env(), run.intents)  # PLUGIN(intents): concat(s_t, g_t) at evaluation
    return run.fit(dataset, eval_env, build_algo)


def main(argv: list[str] | None = None) -> int:
    return worker_main(IQLConfig, "iql", train, argv)


if __name__ == "__main__":
    sys.exit(main())
