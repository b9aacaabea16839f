"""Two tensor operations shared by the Manager's world model and the CORL workers (one home, so a
worker file reaches the Manager's package only through its two PLUGIN lines)."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


def call_frozen(module: nn.Module, *args: Tensor) -> Tensor:
    """module(*args) with its weights detached: gradients reach the inputs only (a loss that trains
    one network through another's output, in the same backward pass as the other's own loss)."""
    return torch.func.functional_call(module, {n: p.detach() for n, p in module.named_parameters()}, args)


def ema_update(target: nn.Module | Iterable[Tensor], online: nn.Module | Iterable[Tensor], tau: float) -> None:
    """theta- <- (1 - tau) theta- + tau theta, in place, without host syncs; modules (their
    parameters) or matching sequences of tensors (e.g. parameters stacked over seeds)."""
    def tensors(x):
        return list(x.parameters()) if isinstance(x, nn.Module) else list(x)

    with torch.no_grad():
        torch._foreach_lerp_(tensors(target), tensors(online), tau)
