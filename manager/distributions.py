"""The two policy heads as plain tensor functions (no torch.distributions objects on the hot path).

- tanh-squashed Gaussian with state-dependent mean and std (continuous IQL-TD-MPC; SAC-style,
  log sigma squashed into (log_std_min, log_std_max));
- L independent categoricals of C classes (the Manager, paper appendix A): actions are flattened
  one-hot vectors of length L*C, log pi(a|z) = sum_l log softmax(logits_l)[a_l], i.e. minus the
  summed cross-entropy.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2 = math.log(2.0)


# --- tanh-Gaussian -------------------------------------------------------------------------
def gaussian_params(raw: Tensor, log_std_min: float, log_std_max: float) -> tuple[Tensor, Tensor]:
    """Split a (..., 2A) head output into mean (..., A) and log sigma (..., A) in (min, max)."""
    mu, log_std = raw.chunk(2, dim=-1)
    log_std = log_std_min + 0.5 * (log_std_max - log_std_min) * (torch.tanh(log_std) + 1.0)
    return mu, log_std


def _log_det_tanh(u: Tensor) -> Tensor:
    """log(1 - tanh(u)^2), numerically stable: 2 (log 2 - u - softplus(-2u))."""
    return 2.0 * (LOG_2 - u - F.softplus(-2.0 * u))


def tanh_gaussian_log_prob(mu: Tensor, log_std: Tensor, action: Tensor) -> Tensor:
    """log pi(a|z) (..., 1) of actions already inside (-1, 1) (clip them first)."""
    u = torch.atanh(action)
    normal = -0.5 * ((u - mu) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    return (normal - _log_det_tanh(u)).sum(-1, keepdim=True)


def tanh_gaussian_rsample(mu: Tensor, log_std: Tensor, eps: Tensor) -> tuple[Tensor, Tensor]:
    """A reparameterised sample a = tanh(mu + sigma eps) and its log-prob (..., 1), given eps ~ N(0, 1)
    of mu's shape (drawn by the caller: WorldModel.pi_noise)."""
    u = mu + log_std.exp() * eps
    log_prob = (-0.5 * eps ** 2 - log_std - 0.5 * math.log(2 * math.pi) - _log_det_tanh(u)).sum(-1, keepdim=True)
    return torch.tanh(u), log_prob


# --- L x C categoricals ----------------------------------------------------------------------
def categorical_logits(raw: Tensor, num_categoricals: int, num_classes: int) -> Tensor:
    return raw.unflatten(-1, (num_categoricals, num_classes))  # (..., L, C)


def categorical_log_prob(logits: Tensor, onehot_flat: Tensor) -> Tensor:
    """sum_l log softmax(logits_l)[a_l] (..., 1) = minus the summed cross-entropy."""
    onehot = onehot_flat.unflatten(-1, logits.shape[-2:])
    return (onehot * F.log_softmax(logits, dim=-1)).sum((-2, -1)).unsqueeze(-1)


def categorical_probs(logits: Tensor) -> Tensor:
    """Flattened category probabilities (..., L*C): the Manager's E[pi(z)]."""
    return F.softmax(logits, dim=-1).flatten(-2)


def categorical_sample(logits: Tensor, uniform: Tensor) -> Tensor:
    """One-hot samples (..., L*C) by the Gumbel-max trick (static shapes), given U(0, 1) noise of
    logits' shape (drawn by the caller: WorldModel.pi_noise)."""
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
    index = (logits + gumbel).argmax(-1)
    return F.one_hot(index, logits.shape[-1]).to(logits.dtype).flatten(-2)


def categorical_mode(logits: Tensor) -> Tensor:
    """The most likely class of each categorical, one-hot flattened (deterministic relabelling)."""
    return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype).flatten(-2)


def straight_through(onehot_flat: Tensor, logits: Tensor) -> Tensor:
    """onehot + probs - stopgrad(probs): forward value one-hot, gradient of the probabilities."""
    probs = categorical_probs(logits)
    return onehot_flat + probs - probs.detach()
