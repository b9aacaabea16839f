"""Network building blocks of TD-MPC's world model (nicklashansen/tdmpc, src/algorithm/helper.py)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def mlp(in_dim: int, hidden: list[int], out_dim: int) -> nn.Sequential:
    """Linear-ELU stack: in -> hidden... -> out (TD-MPC's `mlp` with ELU activations)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ELU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def value_mlp(in_dim: int, hidden: int) -> nn.Sequential:
    """TD-MPC's Q network shape: Linear, LayerNorm, Tanh, Linear, ELU, Linear -> 1 (also used for V)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.Tanh(),
                         nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, 1))


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights and zero biases for every Linear layer (TD-MPC's init)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight)
            nn.init.zeros_(m.bias)


def zero_output_layer(net: nn.Sequential) -> None:
    """Reward and value heads start at exactly zero (TD-MPC zeroes their last layer)."""
    last = net[-1]
    assert isinstance(last, nn.Linear)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
