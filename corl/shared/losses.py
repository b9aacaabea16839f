"""Loss pieces several workers share (CORL writes them inline in every file).

- `td_target(rewards, dones, next_q, gamma)`: the one-step Bellman target r + gamma (1 - done) Q'.
- `twin_critic_loss(q1, q2, target)`: MSE(Q1, y) + MSE(Q2, y), the sum CORL's twin-critic workers
  minimise (TD3+BC, AWAC).
- `expectile_weights(u, tau)`, `expectile_loss(u, tau)`: IQL's asymmetric L2, mean(|tau - 1(u < 0)| u^2),
  and its per-sample weights (IDQL also uses the weights to resample candidate actions).

All inputs are (B,) tensors (rewards and dones squeezed from the buffer's (B, 1)).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def td_target(rewards: Tensor, dones: Tensor, next_q: Tensor, gamma: float) -> Tensor:
    """r + gamma * (1 - done) * next_q: terminal rows do not bootstrap."""
    return rewards + gamma * (1.0 - dones) * next_q


def twin_critic_loss(q1: Tensor, q2: Tensor, target: Tensor) -> Tensor:
    """The sum (not the mean) of the two critics' MSEs to the same target."""
    return F.mse_loss(q1, target) + F.mse_loss(q2, target)


def expectile_weights(u: Tensor, tau: float) -> Tensor:
    """|tau - 1(u < 0)|: tau where u >= 0, 1 - tau where u < 0 (same shape as u)."""
    return torch.abs(tau - (u < 0).float())


def expectile_loss(u: Tensor, tau: float) -> Tensor:
    """The expectile (asymmetric L2) loss mean(|tau - 1(u < 0)| * u^2) of IQL's value function."""
    return torch.mean(expectile_weights(u, tau) * u ** 2)
