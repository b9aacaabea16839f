"""Observation statistics shared by the Manager and the workers."""
from __future__ import annotations

import numpy as np
import torch


def observation_stats(observations: np.ndarray, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std + eps (CORL's convention), computed in float64, returned float32."""
    obs = np.asarray(observations, dtype=np.float64)
    return obs.mean(0).astype(np.float32), (obs.std(0) + eps).astype(np.float32)


def normalized_tensor(obs, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Raw observations (numpy of any strides or dtype, or a tensor) -> (obs - mean) / std as a float32
    tensor on mean's device."""
    if not isinstance(obs, torch.Tensor):  # numpy views with negative strides cannot become tensors
        obs = np.ascontiguousarray(obs, dtype=np.float32)
    return (torch.as_tensor(obs, dtype=torch.float32, device=mean.device) - mean) / std
