"""TD-MPC's world model with IQL-TD-MPC's additions, as a small verb API.

    z = model.encode(obs)            h: obs -> latent
    z1 = model.next(z, a)            f: latent dynamics
    r = model.reward(z, a)           R
    q = model.Q(z, a)                twin critic, stacked: (2, ..., 1); model.Q_frozen: no gradient to Q
    v = model.V(z)                   state value (IQL)
    a = model.pi_sample(z, gen)      policy sample (or pi_sample(z, noise=model.pi_noise(batch_shape, gen)));
                                     model.pi_mean(z) = E[pi(z)]; model.pi_log_prob(z, a)
    logits = model.inverse(z, z_k)   Manager only: b(z_t, z_{t+k}) -> (..., L, C) logits

Continuous modes use a tanh-squashed Gaussian policy (iql_td_mpc) or TD-MPC's tanh mean plus
scheduled Gaussian noise (td_mpc); the Manager uses L x C categoricals (actions are flattened
one-hots of size L*C). Shapes: obs (..., obs_dim), z (..., d), a (..., A).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from manager import distributions as D
from manager.config import AgentConfig
from common.nn_ops import call_frozen
from manager.layers import mlp, orthogonal_init, value_mlp, zero_output_layer


class WorldModel(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: AgentConfig):
        super().__init__()
        self.cfg = cfg
        self.obs_dim = obs_dim
        self.discrete = cfg.num_categoricals > 0
        self.act_dim = cfg.num_categoricals * cfg.num_classes if self.discrete else act_dim
        d, h, A = cfg.latent_dim, cfg.mlp_dim, self.act_dim
        self.encoder = mlp(obs_dim, [cfg.enc_dim], d)
        self.dynamics = mlp(d + A, [h, h], d)
        self.reward_head = mlp(d + A, [h, h], 1)
        self.q_heads = nn.ModuleList([value_mlp(d + A, h) for _ in range(2)])
        self.value_head = value_mlp(d, h)
        policy_out = A if (self.discrete or cfg.policy_loss == "tdmpc") else 2 * A
        self.policy = mlp(d, [h, h], policy_out)
        self.inverse_dynamics = mlp(2 * d, [h, h], A) if self.discrete else None
        orthogonal_init(self)
        for head in (self.reward_head, *self.q_heads):
            zero_output_layer(head)
        # TD-MPC's scheduled policy noise (a buffer so that changing it never recompiles)
        self.register_buffer("tdmpc_std", torch.tensor(cfg.std_init))

    # --- model ---------------------------------------------------------------------------
    def encode(self, obs: Tensor) -> Tensor:
        return self.encoder(obs)

    def next(self, z: Tensor, a: Tensor) -> Tensor:
        return self.dynamics(torch.cat([z, a], -1))

    def reward(self, z: Tensor, a: Tensor) -> Tensor:
        return self.reward_head(torch.cat([z, a], -1))

    def Q(self, z: Tensor, a: Tensor) -> Tensor:
        za = torch.cat([z, a], -1)
        return torch.stack([q(za) for q in self.q_heads])  # (2, ..., 1)

    def Q_frozen(self, z: Tensor, a: Tensor) -> Tensor:
        """Q with its weights held fixed: gradients reach z and a only (TD-MPC's policy loss
        trains the policy through Q without training Q; one backward pass serves both losses)."""
        za = torch.cat([z, a], -1)
        return torch.stack([call_frozen(q, za) for q in self.q_heads])  # (2, ..., 1)

    def V(self, z: Tensor) -> Tensor:
        return self.value_head(z)

    def inverse(self, z: Tensor, z_next: Tensor) -> Tensor:
        """b(z_t, z_{t+k}): (..., L, C) logits of the Manager's abstract action."""
        assert self.inverse_dynamics is not None, "inverse dynamics exists for the Manager only"
        raw = self.inverse_dynamics(torch.cat([z, z_next], -1))
        return D.categorical_logits(raw, self.cfg.num_categoricals, self.cfg.num_classes)

    # --- policy ----------------------------------------------------------------------------
    def _policy_params(self, z: Tensor):
        raw = self.policy(z)
        if self.discrete:
            return D.categorical_logits(raw, self.cfg.num_categoricals, self.cfg.num_classes)
        if self.cfg.policy_loss == "tdmpc":
            return torch.tanh(raw)
        return D.gaussian_params(raw, self.cfg.log_std_min, self.cfg.log_std_max)

    def pi_mean(self, z: Tensor) -> Tensor:
        """E[pi(z)] as the paper uses it: tanh of the Gaussian mean, the TD-MPC mean, or the
        Manager's category probabilities."""
        params = self._policy_params(z)
        if self.discrete:
            return D.categorical_probs(params)
        if self.cfg.policy_loss == "tdmpc":
            return params
        return torch.tanh(params[0])

    def pi_noise(self, batch_shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
        """The random draw behind pi_sample for latents of batch_shape: U(0, 1) (*batch, L, C) for the
        Manager (Gumbel-max), N(0, 1) (*batch, A) otherwise."""
        device = self.tdmpc_std.device
        if self.discrete:
            shape = (*batch_shape, self.cfg.num_categoricals, self.cfg.num_classes)
            return torch.rand(shape, generator=generator, device=device)
        return torch.randn((*batch_shape, self.act_dim), generator=generator, device=device)

    def pi_sample(self, z: Tensor, generator: torch.Generator | None = None, std: Tensor | float | None = None,
                  noise: Tensor | None = None) -> Tensor:
        """A policy sample. td_mpc: clamp(mean + std eps, -1, 1) with std = `std` or the final
        (planning) std; iql_td_mpc: a tanh-Gaussian sample; manager: one-hot categoricals.
        `noise`: pre-drawn N(0, 1) (..., A), for the Manager U(0, 1) (..., L, C); else drawn from `generator`."""
        params = self._policy_params(z)
        if noise is None:
            noise = self.pi_noise(z.shape[:-1], generator)
        if self.discrete:
            return D.categorical_sample(params, noise)
        if self.cfg.policy_loss == "tdmpc":
            std = self.cfg.std_final if std is None else std
            return (params + std * noise).clamp(-1.0, 1.0)
        return D.tanh_gaussian_rsample(*params, noise)[0]

    def pi_rsample_log_prob(self, z: Tensor, generator: torch.Generator | None = None,
                            noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A reparameterised sample and its log-prob (the entropy-bonus term; continuous IQL only)."""
        mu, log_std = self._policy_params(z)
        return D.tanh_gaussian_rsample(mu, log_std, self.pi_noise(z.shape[:-1], generator) if noise is None else noise)

    def pi_log_prob(self, z: Tensor, a: Tensor) -> Tensor:
        """log pi(a|z) (..., 1); continuous actions are clipped to +-action_clip first."""
        if self.cfg.policy_loss == "tdmpc":
            raise ValueError("TD-MPC's policy (mean + scheduled noise) has no log-likelihood")
        params = self._policy_params(z)
        if self.discrete:
            return D.categorical_log_prob(params, a)
        clip = self.cfg.action_clip
        return D.tanh_gaussian_log_prob(*params, a.clamp(-clip, clip))

    def model_parameters(self) -> list[nn.Parameter]:
        """Everything the model loss trains (all but the policy)."""
        return [p for name, p in self.named_parameters() if not name.startswith("policy.")]


class Decoder(nn.Module):
    """Latent -> normalised observation, trained on reconstruction only (paper Fig. 2)."""

    def __init__(self, latent_dim: int, obs_dim: int, hidden: int):
        super().__init__()
        self.net = mlp(latent_dim, [hidden, hidden], obs_dim)
        orthogonal_init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
