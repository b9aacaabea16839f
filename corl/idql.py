"""Implicit Diffusion Q-learning (IDQL, Hansen-Estruch et al. 2023, "IDQL: Implicit Q-Learning as
an Actor-Critic Method with Diffusion Policies"): IQL's critic (V fitted by expectile regression
to the target twin-Q of the dataset's actions, twin Q fitted to r + gamma V(s')), a DDPM behaviour
policy over actions conditioned on the state, and an implicit actor: at action time N candidate
actions are drawn from the diffusion model and one is resampled with weights from the critic.

    python -m corl.idql --env maze2d-umaze-v1 --intent manager
    python -m corl.idql --help

The plugin is reached through exactly two lines, marked with the PLUGIN(intents) comment.

What follows IDQL's code (philippe-eecs/IDQL @ 7582571, jaxrl5/agents/ddpm_iql_simple, the learner
its offline launcher runs, with launcher/examples/train_ddpm_iql_offline.py's settings):
- Critic: twin Q, each concat(s, a) -> 256 -> 256 -> 1 with ReLU and no LayerNorm; V: LayerNorm
  on its input, then 256 -> 256 -> 1 with ReLU (`value_layer_norm`). V is fitted with the
  expectile loss |iql_tau - 1(u < 0)| u^2 on u = minQ_target(s, a) - V(s); both Q heads regress to
  r + discount (1 - done) V(s') by the mean of their MSEs, V(s') read AFTER the V step (IDQL's
  update order: behaviour policy, V, Q); target twin-Q Polyak-averaged with tau 0.005 after the Q
  step. iql_tau 0.7 (locomotion, maze2d) / 0.9 (antmaze), discount 0.99, lrs 3e-4 (Adam).
- Behaviour policy (DDPM, T = 5 steps, IDQL's variance-preserving beta schedule
  beta_t = 1 - exp(-b_min / T - (b_max - b_min)(2t - 1) / (2 T^2)), b_min 0.1, b_max 10): the noise
  predictor eps(s, a_t, t) is IDQL's LN_Resnet: learnable Fourier features of t (128, kernel
  ~ N(0, 0.2^2)) -> MLP 256 -> 256 (swish); concat(a_t, s, time features) -> Linear 256 -> 3
  residual blocks x + Linear(swish(Linear_4x(LayerNorm(Dropout_0.1(x))))) -> swish -> Linear(act).
  Loss: ||eps - eps_hat||^2 summed over action dimensions, averaged over the batch, t uniform in
  {0..T-1}. AdamW (lr 3e-4, weight decay 1e-4: optax.adamw's default) with a cosine decay to 0
  over the run; an EMA copy of the noise predictor (actor_tau 0.001) is the one sampled from.
  Sampling: x_T ~ N(0, I), x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_hat_t) eps) / sqrt(alpha_t)
  + [t > 0] sqrt(beta_t) z, clipped to [-1, 1] after every step (clip_sampler) and at the end.
- Action selection: N = 64 candidates per state; adv = minQ_target(s, a_i) - V(s); the action is
  drawn from the candidates with probabilities proportional to the expectile weights
  |iql_tau - 1(adv < 0)| (`selection expectile`: the importance weights of the implicit policy
  IQL's expectile critic defines, IDQL section 4 / `sample_implicit_policy`). Alternatives:
  `softmax` (probabilities softmax(policy_temperature * adv)) and `argmax` (the candidate with the
  largest Q: what IDQL's offline script evaluates with, `eval_actions`).
- Dataset actions clipped to +-(1 - 1e-5) (IDQL's D4RLDataset), batch 512, rewards: antmaze r - 1,
  locomotion x 1000 / (max return - min return) (`normalize_reward`, CORL's modify_reward, the same
  as IDQL's normalize_returns), maze2d unchanged.

Choices (where this project differs or had to decide):
- State normalisation (mean/std, eps 1e-3) as every worker here (`normalize`; IDQL feeds raw
  states), so the intents appended by the plugin are scaled like the rest.
- maze2d turns V's input LayerNorm off (presets/idql/maze2d.yaml, value_layer_norm false): over a
  4-d state (x, y, vx, vy) it removes the mean and the scale, so V could not tell apart states that
  differ by a common shift or scale. IDQL has no maze2d settings; the rest are the locomotion ones.
- PyTorch's default initialisation (IDQL: xavier-uniform kernels, zero biases), as the other
  workers. No 95/5 train/validation split (IDQL holds 5% out only to log a validation loss).
- The cosine schedule's length is the resolved run length `steps` (IDQL: decay_steps = max_steps).
- Default selection is `expectile` sampling (the paper's implicit policy); `--selection argmax`
  reproduces the repo's evaluation. Sampling at evaluation uses its own generator, reseeded from
  (seed, first episode id) at every evaluation round: a round's random draws do not depend on
  earlier evaluations, and evaluation never moves the training RNG.
- The action box must be [-1, 1] (every task here; IDQL assumes it too): the worker refuses others.
- Training noise and timesteps come from the global torch RNG, which the checkpoint carries
  (with the dropout draws), so a resumed run equals an uninterrupted one; the EMA policy and the
  target twin-Q are part of state_dict().
"""
# (no `from __future__ import annotations`: pyrallis needs evaluated field types)

import math
import sys
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.lr_scheduler import CosineAnnealingLR

from common.cli import config_field as field
from common.seeding import derived_seed
from corl.shared.compiled import CompiledLosses
from corl.shared.config import WorkerConfig, worker_main
from corl.shared.data import load_transitions, modify_reward
from corl.shared.losses import expectile_loss, expectile_weights, td_target, twin_critic_loss
from corl.shared.nets import QNetwork, mlp, soft_update
from corl.shared.run import WorkerRun
from wrappers import augment, wrap_env

SELECTIONS = ("expectile", "softmax", "argmax")
ACTION_EPS = 1e-5  # IDQL's D4RLDataset clips dataset actions to +-(1 - 1e-5)


@dataclass
class IDQLConfig(WorkerConfig):
    algo: str = field("idql", "algorithm name")
    discount: float = field(0.99, "discount factor")
    tau: float = field(0.005, "Polyak coefficient of the target twin-Q")
    iql_tau: float = field(0.7, "expectile of the value loss and of the selection weights (IDQL: critic_hyperparam)")
    batch_size: int = field(512, "training batch size")
    normalize: bool = field(True, "normalise states with the dataset's mean and std")
    normalize_reward: bool = field(True, "reward handling (locomotion: x 1000 / return range; antmaze: r - 1)")
    vf_lr: float = field(3e-4, "Adam learning rate of V")
    qf_lr: float = field(3e-4, "Adam learning rate of the twin Q")
    value_layer_norm: bool = field(True, "LayerNorm on the input of V (IDQL)")
    actor_lr: float = field(3e-4, "initial AdamW learning rate of the diffusion model (cosine-annealed over the run)")
    actor_weight_decay: float = field(1e-4, "AdamW weight decay of the diffusion model")
    actor_tau: float = field(0.001, "EMA coefficient of the diffusion model that actions are sampled from")
    actor_hidden_dim: int = field(256, "width of the noise predictor's residual MLP")
    actor_num_blocks: int = field(3, "residual blocks of the noise predictor")
    actor_dropout: float = field(0.1, "dropout at the start of each residual block (0: none)")
    actor_layer_norm: bool = field(True, "LayerNorm in each residual block")
    time_dim: int = field(128, "size of the Fourier features of the diffusion step")
    diffusion_steps: int = field(5, "DDPM steps T (variance-preserving beta schedule)")
    ddpm_temperature: float = field(1.0, "scale of the noise added at each reverse step")
    clip_sampler: bool = field(True, "clip the sample to [-1, 1] after every reverse step")
    num_samples: int = field(64, "candidate actions drawn per state when acting (N)")
    selection: str = field("expectile", "expectile | softmax | argmax: how one candidate is picked")
    policy_temperature: float = field(3.0, "inverse temperature of selection softmax")


# --- the diffusion behaviour policy ------------------------------------------------------------
def vp_beta_schedule(steps: int) -> Tensor:
    """IDQL's variance-preserving schedule: beta_t = 1 - exp(-b_min/T - (b_max - b_min)(2t - 1)/(2T^2))."""
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    b_min, b_max = 0.1, 10.0
    alpha = torch.exp(-b_min / steps - 0.5 * (b_max - b_min) * (2 * t - 1) / steps ** 2)
    return (1 - alpha).float()  # (T,)


class FourierFeatures(nn.Module):
    """[cos(2 pi t W), sin(2 pi t W)] of the diffusion step t with a learnable W ~ N(0, 0.2^2)."""

    def __init__(self, output_size: int):
        super().__init__()
        self.kernel = nn.Parameter(0.2 * torch.randn(output_size // 2, 1))

    def forward(self, t: Tensor) -> Tensor:
        f = 2 * math.pi * t @ self.kernel.T  # (..., output_size // 2)
        return torch.cat([f.cos(), f.sin()], dim=-1)


class ResidualBlock(nn.Module):
    """x + Linear(swish(Linear_4x(LayerNorm(Dropout(x))))) (IDQL's MLPResNetBlock)."""

    def __init__(self, dim: int, dropout: float, layer_norm: bool):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
                                 nn.LayerNorm(dim) if layer_norm else nn.Identity(),
                                 nn.Linear(dim, 4 * dim), nn.SiLU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class NoisePredictor(nn.Module):
    """eps_hat(s, a_t, t): IDQL's LN_Resnet on concat(a_t, s, MLP(FourierFeatures(t)))."""

    def __init__(self, state_dim: int, action_dim: int, hidden_dim: int = 256, num_blocks: int = 3,
                 time_dim: int = 128, dropout: float = 0.1, layer_norm: bool = True):
        super().__init__()
        self.time_net = nn.Sequential(FourierFeatures(time_dim),
                                      mlp([time_dim, 2 * time_dim, 2 * time_dim], activation=nn.SiLU))
        self.net = nn.Sequential(nn.Linear(action_dim + state_dim + 2 * time_dim, hidden_dim),
                                 *[ResidualBlock(hidden_dim, dropout, layer_norm) for _ in range(num_blocks)],
                                 nn.SiLU(), nn.Linear(hidden_dim, action_dim))

    def forward(self, state: Tensor, noisy_action: Tensor, t: Tensor) -> Tensor:
        """state (..., obs), noisy_action (..., act), t (..., 1) float -> (..., act)."""
        return self.net(torch.cat([noisy_action, state, self.time_net(t)], dim=-1))


class DDPM(nn.Module):
    """A DDPM over actions in [-1, 1] given the state: the training loss and the reverse sampler."""

    def __init__(self, model: NoisePredictor, action_dim: int, steps: int = 5, temperature: float = 1.0,
                 clip_sampler: bool = True):
        super().__init__()
        self.model, self.action_dim, self.steps = model, action_dim, steps
        self.temperature, self.clip_sampler = temperature, clip_sampler
        betas = vp_beta_schedule(steps)
        self.register_buffer("betas", betas)  # (T,)
        self.register_buffer("alphas", 1 - betas)
        self.register_buffer("alpha_hats", torch.cumprod(1 - betas, dim=0))

    def draw(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """The loss's draws for a batch of actions (B, act): t ~ U{0..T-1} (B,) and eps ~ N(0, I) (B, act)."""
        return torch.randint(self.steps, (actions.shape[0],), device=actions.device), torch.randn_like(actions)

    def loss(self, states: Tensor, actions: Tensor, draws: Optional[tuple[Tensor, Tensor]] = None) -> Tensor:
        """mean over the batch of ||eps - eps_hat(s, sqrt(ah_t) a + sqrt(1 - ah_t) eps, t)||^2 for the
        draws (t, eps) of `draw` (drawn here if None)."""
        t, noise = self.draw(actions) if draws is None else draws
        alpha_hat = self.alpha_hats[t].unsqueeze(-1)  # (B, 1)
        noisy = alpha_hat.sqrt() * actions + (1 - alpha_hat).sqrt() * noise
        eps = self.model(states, noisy, t.unsqueeze(-1).float())
        return ((eps - noise) ** 2).sum(-1).mean()

    @torch.no_grad()
    def sample(self, states: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """One action in [-1, 1] per state: states (..., obs) -> (..., act)."""
        shape = (*states.shape[:-1], self.action_dim)
        x = torch.randn(shape, generator=generator, device=states.device)
        for t in reversed(range(self.steps)):
            time = torch.full((*shape[:-1], 1), float(t), device=states.device)
            eps = self.model(states, x, time)
            x = (x - (1 - self.alphas[t]) / (1 - self.alpha_hats[t]).sqrt() * eps) / self.alphas[t].sqrt()
            if t > 0:
                z = torch.randn(shape, generator=generator, device=states.device)
                x = x + self.betas[t].sqrt() * self.temperature * z
            if self.clip_sampler:
                x = x.clamp(-1.0, 1.0)
        return x.clamp(-1.0, 1.0)


# --- the critic ----------------------------------------------------------------------------------
class ValueNetwork(nn.Module):
    """V(s): (LayerNorm on the input), 2 hidden layers of 256 with ReLU -> (B,)."""

    def __init__(self, state_dim: int, hidden_dim: int = 256, layer_norm: bool = True):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(state_dim) if layer_norm else nn.Identity(),
                                 mlp([state_dim, hidden_dim, hidden_dim, 1]))

    def forward(self, state: Tensor) -> Tensor:
        return self.net(state).squeeze(-1)


# --- action selection ----------------------------------------------------------------------------
def selection_weights(adv: Tensor, selection: str, iql_tau: float, temperature: float) -> Tensor:
    """Unnormalised probabilities (B, N) of the candidates from their advantages (B, N)."""
    if selection == "expectile":
        return expectile_weights(adv, iql_tau)
    if selection == "softmax":
        return torch.softmax(temperature * adv, dim=-1)
    if selection == "argmax":
        return F.one_hot(adv.argmax(dim=-1), adv.shape[-1]).float()
    raise ValueError(f"unknown selection {selection!r}; choose one of {' | '.join(SELECTIONS)}")


def pick(candidates: Tensor, weights: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """One candidate (B, N, act) -> (B, act) per row, drawn with probabilities proportional to weights (B, N)."""
    idx = torch.multinomial(weights, 1, generator=generator)  # (B, 1)
    return candidates.gather(1, idx.unsqueeze(-1).expand(-1, -1, candidates.shape[-1])).squeeze(1)


class IDQL(CompiledLosses):
    LOSS_METHODS = ("_actor_loss", "_value_loss", "_q_loss")  # --compile: torch.compile'd (corl/shared/compiled.py)

    def __init__(self, policy: DDPM, critic_1: QNetwork, critic_2: QNetwork, vf: ValueNetwork, max_steps: int,
                 vf_lr: float, qf_lr: float, actor_lr: float, actor_weight_decay: float, actor_tau: float,
                 iql_tau: float, discount: float, tau: float, num_samples: int = 64, selection: str = "expectile",
                 policy_temperature: float = 3.0, seed: int = 0):
        if selection not in SELECTIONS:
            raise ValueError(f"unknown selection {selection!r}; choose one of {' | '.join(SELECTIONS)}")
        self.policy, self.critic_1, self.critic_2, self.vf = policy, critic_1, critic_2, vf
        self.ema_policy = deepcopy(policy).requires_grad_(False).eval()
        self.target_critic_1 = deepcopy(critic_1).requires_grad_(False)
        self.target_critic_2 = deepcopy(critic_2).requires_grad_(False)
        self.actor_optimizer = torch.optim.AdamW(policy.parameters(), lr=actor_lr, weight_decay=actor_weight_decay)
        self.actor_lr_schedule = CosineAnnealingLR(self.actor_optimizer, max_steps)
        self.v_optimizer = torch.optim.Adam(vf.parameters(), lr=vf_lr)
        self.q_optimizer = torch.optim.Adam([*critic_1.parameters(), *critic_2.parameters()], lr=qf_lr)
        self.actor_tau, self.iql_tau = actor_tau, iql_tau
        self.discount, self.tau = discount, tau
        self.num_samples, self.selection, self.policy_temperature = num_samples, selection, policy_temperature
        self.seed = seed
        self.generator = torch.Generator(next(vf.parameters()).device).manual_seed(seed)  # evaluation only
        self.total_it = 0

    def min_target_q(self, states: Tensor, actions: Tensor) -> Tensor:
        return torch.min(self.target_critic_1(states, actions), self.target_critic_2(states, actions))

    def _actor_loss(self, states: Tensor, actions: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        return self.policy.loss(states, actions, (t, noise))

    def _value_loss(self, states: Tensor, actions: Tensor) -> Tensor:
        with torch.no_grad():
            target_q = self.min_target_q(states, actions)  # (B,)
        return expectile_loss(target_q - self.vf(states), self.iql_tau)

    def _q_loss(self, states: Tensor, actions: Tensor, rewards: Tensor, next_states: Tensor, dones: Tensor) -> Tensor:
        with torch.no_grad():  # V(s') after the V step (IDQL's order)
            targets = td_target(rewards.squeeze(-1), dones.squeeze(-1), self.vf(next_states), self.discount)
        return twin_critic_loss(self.critic_1(states, actions), self.critic_2(states, actions), targets) / 2

    def update(self, batch: list[Tensor]) -> dict[str, Tensor]:
        self.total_it += 1
        states, actions, rewards, next_states, dones = batch

        actor_loss = self._actor_loss(states, actions, *self.policy.draw(actions))
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()
        self.actor_lr_schedule.step()
        soft_update(self.ema_policy, self.policy, self.actor_tau)

        value_loss = self._value_loss(states, actions)
        self.v_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        self.v_optimizer.step()

        q_loss = self._q_loss(states, actions, rewards, next_states, dones)
        self.q_optimizer.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_optimizer.step()
        soft_update(self.target_critic_1, self.critic_1, self.tau)
        soft_update(self.target_critic_2, self.critic_2, self.tau)
        return {"actor_loss": actor_loss.detach(), "value_loss": value_loss.detach(), "q_loss": q_loss.detach()}

    @torch.no_grad()
    def candidates(self, obs: Tensor) -> Tensor:
        """num_samples actions in [-1, 1] per state from the EMA diffusion model: (B, obs) -> (B, N, act)."""
        states = obs.unsqueeze(1).expand(-1, self.num_samples, -1)  # (B, N, obs)
        return self.ema_policy.sample(states, self.generator)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        """Batched over eval envs: N candidates per state, one drawn with the critic's weights."""
        candidates = self.candidates(obs)  # (B, N, act)
        adv = self.min_target_q(obs, candidates) - self.vf(obs).unsqueeze(-1)  # (B, N)
        weights = selection_weights(adv, self.selection, self.iql_tau, self.policy_temperature)
        return pick(candidates, weights, self.generator)  # (B, act)

    def reset(self, episode_ids: np.ndarray) -> None:
        """Each evaluation round samples from its own stream: seeded by (seed, first episode id)."""
        self.generator.manual_seed(derived_seed(self.seed, episode_ids[0]))

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "ema_policy": self.ema_policy.state_dict(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "actor_lr_schedule": self.actor_lr_schedule.state_dict(), "critic_1": self.critic_1.state_dict(),
                "critic_2": self.critic_2.state_dict(), "target_critic_1": self.target_critic_1.state_dict(),
                "target_critic_2": self.target_critic_2.state_dict(), "q_optimizer": self.q_optimizer.state_dict(),
                "vf": self.vf.state_dict(), "v_optimizer": self.v_optimizer.state_dict(), "total_it": self.total_it}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("policy", "ema_policy", "actor_optimizer", "actor_lr_schedule", "critic_1", "critic_2",
                     "target_critic_1", "target_critic_2", "q_optimizer", "vf", "v_optimizer"):
            getattr(self, name).load_state_dict(state[name])
        self.total_it = int(state["total_it"])


def clip_actions(dataset: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Actions clipped to +-(1 - ACTION_EPS), as IDQL's D4RLDataset does on loading. Returns a new dict."""
    limit = 1.0 - ACTION_EPS
    return {**dataset, "actions": np.clip(dataset["actions"], -limit, limit).astype(np.float32)}


def make_policy(cfg: IDQLConfig, state_dim: int, action_dim: int) -> DDPM:
    model = NoisePredictor(state_dim, action_dim, cfg.actor_hidden_dim, cfg.actor_num_blocks, cfg.time_dim,
                           cfg.actor_dropout, cfg.actor_layer_norm)
    return DDPM(model, action_dim, cfg.diffusion_steps, cfg.ddpm_temperature, cfg.clip_sampler)


def build_algo(cfg: IDQLConfig, state_dim: int, action_dim: int, max_action: float,
               device: str | torch.device) -> IDQL:
    """The networks (on `device`) and the trainer; `cfg.steps` is the actor's cosine schedule length."""
    if max_action != 1.0:
        raise ValueError(f"IDQL samples actions in [-1, 1]; {cfg.env}'s action box is +-{max_action}")
    return IDQL(make_policy(cfg, state_dim, action_dim).to(device),
                QNetwork(state_dim, action_dim).to(device), QNetwork(state_dim, action_dim).to(device),
                ValueNetwork(state_dim, layer_norm=cfg.value_layer_norm).to(device), cfg.steps,
                cfg.vf_lr, cfg.qf_lr, cfg.actor_lr, cfg.actor_weight_decay, cfg.actor_tau, cfg.iql_tau, cfg.discount,
                cfg.tau, cfg.num_samples, cfg.selection, cfg.policy_temperature, cfg.seed)


def train(cfg: IDQLConfig) -> dict[str, Any] | None:
    run = WorkerRun(cfg)
    cfg = run.cfg  # steps resolved from the profile: the length of the diffusion model's cosine schedule
    dataset = load_transitions(cfg.env, cfg.data_dir, show_progress=cfg.progress)
    dataset = augment(dataset, run.intents)  # PLUGIN(intents): append g_t to the dataset's states
    dataset = clip_actions(dataset)
    if cfg.normalize_reward:
        dataset = modify_reward(dataset, cfg.env)
    eval_env = wrap_env(run.make_eval_env(), run.intents)  # PLUGIN(intents): concat(s_t, g_t) at evaluation
    return run.fit(dataset, eval_env, build_algo)


def main(argv: list[str] | None = None) -> int:
    return worker_main(IDQLConfig, "idql", train, argv)


if __name__ == "__main__":
    sys.exit(main())
