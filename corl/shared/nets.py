"""Network pieces the workers share (CORL defines them again in every file; here they live once).

- `mlp(dims, ...)`: Linear/activation stacks with optional dropout and layer norm.
- `DeterministicActor`: tanh MLP scaled by max_action (BC, TD3+BC, IQL's deterministic policy).
- `GaussianActor`: N(mean(s), exp(log_std)) with a state-independent, clamped log-std parameter
  (AWAC: linear mean, 3 hidden layers; IQL: tanh mean, 2 hidden layers, optional dropout).
- `QNetwork`: Q(s, a) from concat(s, a), any number of hidden layers; accepts a set of actions
  per state (`actions` of shape (B, N, act) with `states` (B, obs) gives (B, N)), as CQL needs.
- `soft_update`: Polyak averaging of target networks.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from common.nn_ops import ema_update


def mlp(dims: Sequence[int], activation: Callable[[], nn.Module] = nn.ReLU,
        output_activation: Callable[[], nn.Module] | None = None, dropout: float | None = None,
        layer_norm: bool = False) -> nn.Sequential:
    """dims = [in, hidden..., out]: Linear -> (LayerNorm) -> activation -> (Dropout) per hidden layer."""
    if len(dims) < 2:
        raise ValueError("mlp needs at least an input and an output size")
    layers: list[nn.Module] = []
    for size_in, size_out in zip(dims[:-2], dims[1:-1]):
        layers.append(nn.Linear(size_in, size_out))
        if layer_norm:
            layers.append(nn.LayerNorm(size_out))
        layers.append(activation())
        if dropout is not None and dropout > 0:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(dims[-2], dims[-1]))
    if output_activation is not None:
        layers.append(output_activation())
    return nn.Sequential(*layers)


class DeterministicActor(nn.Module):
    """a = max_action * tanh(MLP(s)); CORL's BC / TD3+BC actor (256 x 2 hidden by default)."""

    def __init__(self, state_dim: int, action_dim: int, max_action: float, hidden_dim: int = 256,
                 n_hidden: int = 2, dropout: float | None = None):
        super().__init__()
        self.net = mlp([state_dim, *[hidden_dim] * n_hidden, action_dim], output_activation=nn.Tanh,
                       dropout=dropout)
        self.max_action = max_action

    def forward(self, state: Tensor) -> Tensor:
        return self.max_action * self.net(state)


class GaussianActor(nn.Module):
    """pi(.|s) = N(mean(s), exp(clamp(log_std, log_std_min, log_std_max))), one log-std per action
    dimension shared by all states (CORL's AWAC Actor and IQL GaussianPolicy). `tanh_mean` puts a
    tanh on the mean (IQL); AWAC's mean is the raw MLP output."""

    def __init__(self, state_dim: int, action_dim: int, hidden_dim: int = 256, n_hidden: int = 2,
                 tanh_mean: bool = False, dropout: float | None = None, log_std_min: float = -20.0,
                 log_std_max: float = 2.0):
        super().__init__()
        self.net = mlp([state_dim, *[hidden_dim] * n_hidden, action_dim],
                       output_activation=nn.Tanh if tanh_mean else None, dropout=dropout)
        self.log_std = nn.Parameter(torch.zeros(action_dim, dtype=torch.float32))
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, state: Tensor) -> torch.distributions.Normal:
        mean = self.net(state)  # (B, act)
        std = self.log_std.clamp(self.log_std_min, self.log_std_max).exp()  # (act,)
        # validate_args=False: argument checks would read tensors back to the host every step
        return torch.distributions.Normal(mean, std, validate_args=False)

    def log_prob(self, state: Tensor, action: Tensor) -> Tensor:
        """log pi(a|s) summed over action dimensions: (B,)."""
        return self(state).log_prob(action).sum(-1)


class QNetwork(nn.Module):
    """Q(s, a) -> (B,) for actions (B, act), or (B, N) for actions (B, N, act)."""

    def __init__(self, state_dim: int, action_dim: int, hidden_dim: int = 256, n_hidden: int = 2):
        super().__init__()
        self.net = mlp([state_dim + action_dim, *[hidden_dim] * n_hidden, 1])

    def forward(self, state: Tensor, action: Tensor) -> Tensor:
        if action.dim() == 3 and state.dim() == 2:  # N actions per state
            state = state.unsqueeze(1).expand(-1, action.shape[1], -1)  # (B, N, obs)
        return self.net(torch.cat([state, action], dim=-1)).squeeze(-1)


# target <- (1 - tau) * target + tau * source, CORL's name for the world model's Polyak update (one
# foreach lerp over all parameters: one kernel per network on a GPU)
soft_update = ema_update
