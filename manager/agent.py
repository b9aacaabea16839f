"""The agent: world model + target network + optimisers, and the update step of every mode.

One update on a batch of sub-trajectories (s_0, a_0, r_1, s_1, ..., s_H) (SPEC.md section 1):
latent rollout z^_0 = h(s_0), z^_{t+1} = f(z^_t, a_t); step t weighted by rho^t (and by the
sampler's mask past an episode's end);
  model loss  = [c_f L_f + c_R L_R + c_Q L_Q + v_coef L_V] summed over t, batch mean, / H
  policy loss = IQL's advantage-weighted log-likelihood (+ entropy bonus), or TD-MPC's -min Q.
The Manager's actions are a_t = b(z_t, z_{t+k}) (straight-through one-hot samples), so the
model loss also trains b. Nothing in `update` reads a value back to the host.
"""
from __future__ import annotations

import copy
from typing import NamedTuple

import torch
from torch import Tensor

from common.nn_ops import ema_update
from manager import distributions as D
from manager import losses as L
from manager.config import AgentConfig, validate
from manager.data import SequenceBatch
from manager.world_model import WorldModel


class UpdateNoise(NamedTuple):
    """The random draws of one update, taken before the loss computation (None: not used by the mode)."""
    inverse: Tensor | None    # (H, B, L, C) U(0, 1): the Manager's straight-through action samples
    bootstrap: Tensor | None  # TD target's policy sample at s' (bootstrap='sample'): (H, B, A) N(0, 1), or (H, B, L, C) U(0, 1)
    policy: Tensor | None     # (H, B, A) N(0, 1): the policy loss's own sample (td_mpc; continuous IQL's entropy term)


class UpdateLosses(NamedTuple):
    model_loss: Tensor
    policy_loss: Tensor
    latents: Tensor              # (B, d) detached latents of the batch's first states
    priorities: Tensor | None    # (B,) TD-MPC's replay priorities (prioritised replay only)
    metrics: dict[str, Tensor]   # detached scalars


class Agent:
    def __init__(self, obs_dim: int, act_dim: int, cfg: AgentConfig, device: str | torch.device = "cpu",
                 seed: int = 0):
        validate(cfg)
        self.cfg = cfg
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.model = WorldModel(obs_dim, act_dim, cfg).to(self.device)
        self.target = copy.deepcopy(self.model).requires_grad_(False)
        self.model_optim = torch.optim.Adam(self.model.model_parameters(), lr=cfg.lr)
        self.pi_optim = torch.optim.Adam(self.model.policy.parameters(), lr=cfg.lr)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.step = 0
        self.priorities: Tensor | None = None  # (B,) of the last update, for prioritised replay
        self.latents: Tensor | None = None  # (B, d) of the last update
        self.rho_weights = cfg.rho ** torch.arange(cfg.horizon, device=self.device, dtype=torch.float32)
        self._losses = self.losses  # torch.compile(self.losses) after compile()

    # --- pieces of the update --------------------------------------------------------------
    def policy_noise_std(self, step: int) -> float:
        """TD-MPC's linearly decaying exploration std."""
        frac = min(step / max(self.cfg.std_decay_steps, 1), 1.0)
        return self.cfg.std_init + frac * (self.cfg.std_final - self.cfg.std_init)

    def draw_noise(self, horizon: int, batch_size: int) -> UpdateNoise:
        """Every random draw of one update from the agent's generator, in a fixed order: b's action
        samples, the TD target's policy sample, the policy loss's sample (each only where the mode
        uses it)."""
        cfg, model, gen = self.cfg, self.model, self.generator
        shape = (horizon, batch_size)
        inverse = model.pi_noise(shape, gen) if model.discrete else None  # b's samples: the policy's kind of draw
        bootstrap = model.pi_noise(shape, gen) if cfg.critic_loss != "iql" and cfg.bootstrap == "sample" else None
        policy = model.pi_noise(shape, gen) if cfg.policy_loss == "tdmpc" or not model.discrete else None
        return UpdateNoise(inverse, bootstrap, policy)

    def abstract_actions(self, z: Tensor, z_next: Tensor, uniform: Tensor) -> Tensor:
        """Manager actions b(z_t, z_{t+k}): one-hot samples with straight-through gradients."""
        logits = self.model.inverse(z, z_next)  # (H, B, L, C)
        return D.straight_through(D.categorical_sample(logits.detach(), uniform), logits)

    @torch.no_grad()
    def bootstrap_value(self, next_z: Tensor, noise: Tensor | None) -> Tensor:
        """The value of s' in the TD target: min Q-(z', E[pi(z')] or a sample), or V(z') (IQL)."""
        if self.cfg.critic_loss == "iql":
            return self.model.V(next_z)
        if self.cfg.bootstrap == "mean":
            next_a = self.model.pi_mean(next_z)
        else:
            next_a = self.model.pi_sample(next_z, noise=noise)
        return self.target.Q(next_z, next_a).min(0).values

    def policy_terms(self, z: Tensor, actions: Tensor, q_target: Tensor, v: Tensor, noise: Tensor | None) -> Tensor:
        """Per-step policy loss (H, B, 1) on detached latents."""
        cfg = self.cfg
        if cfg.policy_loss == "tdmpc":
            a = self.model.pi_sample(z, std=self.model.tdmpc_std, noise=noise)
            return L.tdmpc_policy_loss(self.model.Q_frozen(z, a).min(0).values)
        weights = L.awr_weights(q_target, v.detach(), cfg.iql_beta, cfg.adv_weight_max)
        log_prob = self.model.pi_log_prob(z, actions)
        own = None if self.model.discrete else self.model.pi_rsample_log_prob(z, noise=noise)[1]
        return L.iql_policy_loss(log_prob, weights, own, cfg.entropy_coef)

    def losses(self, batch: SequenceBatch, noise: UpdateNoise) -> UpdateLosses:
        """The update's forward pass: a pure function of the batch, the pre-drawn noise and the
        weights (no draws, no host syncs, static shapes), so `torch.compile` traces it as one graph."""
        cfg, model = self.cfg, self.model
        H = batch.rewards.shape[0]
        z_all = model.encode(batch.obs)  # (H+1, B, d)
        with torch.no_grad():
            z_target_next = self.target.encode(batch.obs[1:])  # (H, B, d)
        if model.discrete:
            actions = self.abstract_actions(z_all[:-1], z_all[1:], noise.inverse)  # (H, B, L*C)
        else:
            actions = batch.actions  # (H, B, A)
        rewards, not_done = batch.rewards.unsqueeze(-1), batch.not_done.unsqueeze(-1)  # (H, B, 1)
        td_targets = L.td_target(rewards, not_done, cfg.gamma,
                                 self.bootstrap_value(z_all[1:].detach(), noise.bootstrap))

        z = z_all[0]
        latents, consistency, reward, critic, td_error = [], [], [], [], []
        prioritized = cfg.prioritized_replay
        for t in range(H):
            latents.append(z)
            q = model.Q(z, actions[t])  # (2, B, 1)
            reward.append(L.reward_loss(model.reward(z, actions[t]), rewards[t]))
            critic.append(L.critic_loss(q, td_targets[t]))
            if prioritized:
                td_error.append((q.detach() - td_targets[t]).abs().sum(0))  # (B, 1) |Q1 - y| + |Q2 - y|
            z = model.next(z, actions[t])
            consistency.append(L.consistency_loss(z, z_target_next[t]))
        zs = torch.stack(latents)  # (H, B, d)
        with torch.no_grad():
            q_target = self.target.Q(zs, actions).min(0).values  # (H, B, 1)
        v = model.V(zs)
        value = L.expectile_loss(q_target - v, cfg.iql_tau)
        policy = self.policy_terms(zs.detach(), actions.detach(), q_target, v, noise.policy)

        step_weight = (self.rho_weights[:H, None, None] * batch.mask.unsqueeze(-1))  # (H, B, 1)
        sample_weight = batch.weight.unsqueeze(-1)  # (B, 1) importance weights (prioritised replay)

        def reduce(per_sample: list[Tensor] | Tensor) -> Tensor:
            stacked = torch.stack(per_sample) if isinstance(per_sample, list) else per_sample
            return (sample_weight * (step_weight * stacked.clamp(max=cfg.loss_clamp)).sum(0)).mean()

        terms = {"consistency": reduce(consistency), "reward": reduce(reward), "critic": reduce(critic),
                 "value": reduce(value)}
        model_loss = (cfg.consistency_coef * terms["consistency"] + cfg.reward_coef * terms["reward"]
                      + cfg.value_coef * terms["critic"] + cfg.v_coef * terms["value"]) / H
        policy_loss = (step_weight * policy).sum(0).mean()
        priorities = None
        if prioritized:  # TD-MPC's replay priorities: rho-weighted sum over the steps of both heads' |TD error|
            priorities = (step_weight * torch.stack(td_error)).sum(0).squeeze(-1).clamp(max=cfg.loss_clamp)
        metrics = {**terms, "model_loss": model_loss, "policy": policy_loss, "q_mean": q_target.mean(),
                   "v_mean": v.mean()}
        return UpdateLosses(model_loss, policy_loss, z_all[0].detach(), priorities,
                            {k: val.detach() for k, val in metrics.items()})

    def compile(self, **compile_kwargs) -> None:
        """Run the loss computation through `torch.compile` (backward included, via AOTAutograd);
        the draws, the optimiser steps and the target update stay eager."""
        self._losses = torch.compile(self.losses, fullgraph=True, **compile_kwargs)

    # --- the update --------------------------------------------------------------------------
    def update(self, batch: SequenceBatch) -> dict[str, Tensor]:
        cfg, model = self.cfg, self.model
        if cfg.policy_loss == "tdmpc":
            model.tdmpc_std.fill_(self.policy_noise_std(self.step))
        noise = self.draw_noise(*batch.rewards.shape)
        out = self._losses(batch, noise)

        self.model_optim.zero_grad(set_to_none=True)
        self.pi_optim.zero_grad(set_to_none=True)
        # the policy loss reaches only the policy (detached latents, weights and actions; TD-MPC's
        # through Q_frozen), so one backward pass gives both optimisers their gradients
        (out.model_loss + out.policy_loss).backward()
        policy_params = list(model.policy.parameters())
        grad_norm = torch.nn.utils.clip_grad_norm_(model.model_parameters(), cfg.grad_clip)
        torch.nn.utils.clip_grad_norm_(policy_params, cfg.grad_clip)
        self.model_optim.step()
        self.pi_optim.step()
        self.step += 1
        self.latents = out.latents  # (B, d) latents of the batch's first states (the decoder's input)
        self.priorities = out.priorities
        if self.step % cfg.target_update_every == 0:
            ema_update(self.target, model, cfg.target_tau)
        return {**out.metrics, "grad_norm": grad_norm.detach()}

    # --- state for checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "target": self.target.state_dict(),
                "model_optim": self.model_optim.state_dict(), "pi_optim": self.pi_optim.state_dict(),
                "generator": self.generator.get_state(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.target.load_state_dict(state["target"])
        self.model_optim.load_state_dict(state["model_optim"])
        self.pi_optim.load_state_dict(state["pi_optim"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
