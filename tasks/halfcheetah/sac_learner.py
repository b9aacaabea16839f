"""The SAC learner of the halfcheetah data-collection runs (`tasks.halfcheetah.sac`): the
tanh-Gaussian actor, the twin critics evaluated as one batched ensemble, and one update step
(critics, actor, entropy temperature, Polyak targets) with its state for checkpoints."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from tasks.halfcheetah.policies import LOG_STD_MAX, LOG_STD_MIN

if TYPE_CHECKING:
    from tasks.halfcheetah.sac import SACConfig


# --- networks --------------------------------------------------------------------------------
class Actor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, act_dim)
        self.log_std = nn.Linear(hidden, act_dim)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(obs)
        return self.mean(h), self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(tanh-squashed action, its log-probability), reparameterised."""
        mean, log_std = self(obs)
        eps = torch.randn_like(mean)
        u = mean + log_std.exp() * eps
        # log N(u; mean, std) - sum log(1 - tanh(u)^2), the latter as 2 (log 2 - u - softplus(-2u))
        logp = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return torch.tanh(u), logp


class EnsembleLinear(nn.Module):
    """`n` independent Linear layers applied as one batched matmul: (n, B, fin) -> (n, B, fout)."""

    def __init__(self, n: int, fin: int, fout: int):
        super().__init__()
        bound = 1.0 / math.sqrt(fin)  # nn.Linear's default init range
        self.weight = nn.Parameter(torch.empty(n, fin, fout).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, fout).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class TwinCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int, n: int = 2):
        super().__init__()
        self.n = n
        self.net = nn.Sequential(EnsembleLinear(n, obs_dim + act_dim, hidden), nn.ReLU(),
                                 EnsembleLinear(n, hidden, hidden), nn.ReLU(), EnsembleLinear(n, hidden, 1))

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        x = torch.cat([obs, act], -1).unsqueeze(0).expand(self.n, -1, -1)
        return self.net(x).squeeze(-1)  # (n, B)


# --- the learner ---------------------------------------------------------------------------
class SAC:
    def __init__(self, cfg: SACConfig, obs_dim: int, act_dim: int, device: torch.device):
        self.cfg, self.device = cfg, device
        self.actor = Actor(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic = TwinCritic(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic_target = TwinCritic(obs_dim, act_dim, cfg.hidden).to(device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        self.log_alpha = torch.tensor(math.log(cfg.init_alpha), device=device, requires_grad=True)
        self.target_entropy = -float(act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())

    def update(self, obs: Tensor, act: Tensor, rew: Tensor, next_obs: Tensor, done: Tensor,
               train_actor: bool = True) -> dict[str, Tensor]:
        """One SAC step on a batch: critics, then actor (against the updated critics), then alpha,
        then the targets; `train_actor=False` steps the critics and targets only (actor and alpha
        losses still reported). Returns detached scalar metrics (still on the device)."""
        cfg = self.cfg
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_act, next_logp = self.actor.sample(next_obs)
            next_q = self.critic_target(next_obs, next_act).min(0).values
            target = rew + cfg.gamma * (1.0 - done) * (next_q - alpha * next_logp)
        q = self.critic(obs, act)
        critic_loss = (q - target).pow(2).mean(1).sum()  # sum of the two critics' MSEs
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        self.critic.requires_grad_(False)  # the actor loss needs dQ/da only
        with torch.set_grad_enabled(train_actor):
            new_act, logp = self.actor.sample(obs)
            q_pi = self.critic(obs, new_act).min(0).values
            actor_loss = (alpha * logp - q_pi).mean()
        if train_actor:
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
        self.critic.requires_grad_(True)

        if train_actor:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()

        with torch.no_grad():
            torch._foreach_lerp_(self._target_params, self._critic_params, cfg.tau)
        return {"critic_loss": critic_loss.detach(), "actor_loss": actor_loss.detach(),
                "alpha": alpha, "entropy": -logp.detach().mean(), "q": q.detach().mean()}

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.actor.load_state_dict(sd["actor"])
        self.critic.load_state_dict(sd["critic"])
        self.critic_target.load_state_dict(sd["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(sd["log_alpha"])
        self.actor_opt.load_state_dict(sd["actor_opt"])
        self.critic_opt.load_state_dict(sd["critic_opt"])
        self.alpha_opt.load_state_dict(sd["alpha_opt"])
