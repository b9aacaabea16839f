"""The replay buffer of the halfcheetah SAC runs (`tasks.halfcheetah.sac`) and its D4RL view: the
medium-replay dataset is this buffer, oldest transition first."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from tasks.halfcheetah.env import ACT_DIM, OBS_DIM


class ReplayBuffer:
    """Transitions in arrival order (a ring once full), on the training device. Beside what SAC
    needs it keeps what a D4RL file holds: timeouts, the action's log-probability, the x position."""

    FIELDS = {"observations": OBS_DIM, "actions": ACT_DIM, "rewards": 0, "next_observations": OBS_DIM,
              "terminals": 0, "timeouts": 0, "action_log_probs": 0, "x_positions": 0}

    def __init__(self, capacity: int, device: torch.device):
        self.capacity, self.device = capacity, device
        self.data = {k: torch.zeros((capacity, d) if d else (capacity,), dtype=torch.float32, device=device)
                     for k, d in self.FIELDS.items()}
        self.size = 0   # filled rows
        self.added = 0  # transitions ever added

    def add(self, **row) -> None:
        i = self.added % self.capacity
        for k, v in row.items():
            self.data[k][i] = torch.as_tensor(v, dtype=torch.float32)
        self.added += 1
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int) -> tuple[Tensor, ...]:
        idx = torch.randint(0, self.size, (batch_size,)).to(self.device)
        d = self.data
        return (d["observations"][idx], d["actions"][idx], d["rewards"][idx], d["next_observations"][idx],
                d["terminals"][idx])

    def ordered(self) -> dict[str, Tensor]:
        """The filled rows, oldest first (CPU copies)."""
        start = self.added % self.capacity if self.added > self.capacity else 0
        order = torch.arange(start, start + self.size) % self.capacity
        return {k: v[order.to(self.device)].cpu() for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "added": self.added,
                "data": {k: v[:self.size].cpu().clone() for k, v in self.data.items()}}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.size, self.added = int(sd["size"]), int(sd["added"])
        for k, v in sd["data"].items():
            self.data[k][:self.size] = v.to(self.device)


def to_d4rl(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    """The buffer as a D4RL-layout dataset (medium-replay): arrays oldest first, infos as D4RL's."""
    d = {k: v.numpy() for k, v in buffer.ordered().items()}
    obs = d["observations"]
    return {
        "observations": obs, "actions": d["actions"], "rewards": d["rewards"],
        "next_observations": d["next_observations"], "terminals": d["terminals"] > 0.5,
        "timeouts": d["timeouts"] > 0.5, "infos/action_log_probs": d["action_log_probs"],
        "infos/qpos": np.concatenate([d["x_positions"][:, None], obs[:, :8]], 1), "infos/qvel": obs[:, 8:].copy(),
    }
