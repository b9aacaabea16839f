"""The loss terms of IQL-TD-MPC and TD-MPC, per sample (reduce them in the agent).

Paper eqs. (1)-(3) and section 2.2; SPEC.md section 1. Shapes: (..., 1) per sample unless noted.
"""
from __future__ import annotations

import torch
from torch import Tensor


def expectile_loss(u: Tensor, tau: float) -> Tensor:
    """L2^tau(u) = |tau - 1(u < 0)| u^2 (IQL's asymmetric squared loss, eq. 1)."""
    weight = torch.where(u < 0, 1.0 - tau, tau)
    return weight * u ** 2


def awr_weights(q: Tensor, v: Tensor, beta: float, max_weight: float) -> Tensor:
    """stopgrad(min(exp(beta (Q - V)), max_weight)): advantage weights of eq. 3."""
    return torch.exp(beta * (q - v)).clamp(max=max_weight).detach()


def consistency_loss(z_pred: Tensor, z_target: Tensor) -> Tensor:
    """Latent consistency ||f(z, a) - h-(s')||^2, averaged over latent dims as TD-MPC's code does."""
    return ((z_pred - z_target) ** 2).mean(-1, keepdim=True)


def reward_loss(r_pred: Tensor, r: Tensor) -> Tensor:
    return (r_pred - r) ** 2


def critic_loss(q: Tensor, target: Tensor) -> Tensor:
    """Both heads regress to the same target: sum over the head axis of (Q_i - y)^2; q (2, ..., 1)."""
    return ((q - target.unsqueeze(0)) ** 2).sum(0)


def td_target(r: Tensor, not_done: Tensor, gamma: float, next_value: Tensor) -> Tensor:
    """r + gamma (1 - done) V', with V' = min Q-(z', pi(z')) (L_Q) or V(z') (L_Q,IQL)."""
    return r + gamma * not_done * next_value


def iql_policy_loss(log_prob_data: Tensor, weights: Tensor, log_prob_own: Tensor | None,
                    entropy_coef: float) -> Tensor:
    """-w log pi(a|z) + entropy_coef log pi(a~|z), a~ ~ pi(.|z) (eq. 3 + Table 7's entropy bonus)."""
    loss = -weights * log_prob_data
    if log_prob_own is not None:
        loss = loss + entropy_coef * log_prob_own
    return loss


def tdmpc_policy_loss(q_min: Tensor) -> Tensor:
    """TD-MPC's policy loss -min Q(z, pi(z)) (trains the policy only)."""
    return -q_min
