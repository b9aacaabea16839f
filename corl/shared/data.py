"""Worker data plumbing: D4RL transitions, CORL's reward handling and normalisation, a replay buffer
resident on the device."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from common.normalization import observation_stats
from tasks import get_task, load_dataset, qlearning_dataset

LOCOMOTION = ("halfcheetah", "hopper", "walker2d")


def load_transitions(env: str, data_dir: str | None = None, show_progress: bool = True) -> dict[str, np.ndarray]:
    """D4RL's qlearning_dataset view of the task's dataset (CORL's starting point)."""
    raw = load_dataset(env, data_dir, show_progress=show_progress)
    return qlearning_dataset(raw, max_episode_steps=get_task(env).max_episode_steps)


def episode_slices(dataset: dict[str, np.ndarray], max_episode_steps: int = 1000) -> list[slice]:
    """CORL's episode split of a transition dataset: an episode ends at a terminal or after
    max_episode_steps rows (used for return ranges and keep_best_trajectories)."""
    n = len(dataset["terminals"])
    ends = [*(np.flatnonzero(dataset["terminals"]) + 1).tolist(), n]
    slices, start = [], 0
    for end in ends:  # one iteration per terminal-ended stretch, cut into max_episode_steps pieces
        slices += [slice(s, min(s + max_episode_steps, end)) for s in range(start, end, max_episode_steps)]
        start = end
    return slices


def modify_reward(dataset: dict[str, np.ndarray], env: str, max_episode_steps: int = 1000) -> dict[str, np.ndarray]:
    """CORL's reward handling with normalize_reward (AWAC, IQL, TD3+BC): locomotion rewards scaled
    by 1000 / (max return - min return), antmaze r - 1, maze2d unchanged. Returns a new dict."""
    out = dict(dataset)
    if any(name in env for name in LOCOMOTION):
        returns = [dataset["rewards"][s].sum() for s in episode_slices(dataset, max_episode_steps)]
        out["rewards"] = dataset["rewards"] * (1000.0 / (max(returns) - min(returns)))
    elif "antmaze" in env:
        out["rewards"] = dataset["rewards"] - 1.0
    return out


def normalize_dataset(dataset: dict[str, np.ndarray], normalize: bool = True
                      ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """CORL's state normalisation of observations and next_observations (stats from observations)."""
    obs_dim = dataset["observations"].shape[1]
    if normalize:
        mean, std = observation_stats(dataset["observations"])
    else:
        mean, std = np.zeros(obs_dim, np.float32), np.ones(obs_dim, np.float32)
    out = dict(dataset)
    for key in ("observations", "next_observations"):
        out[key] = ((dataset[key] - mean) / std).astype(np.float32)
    return out, mean, std


class ReplayBuffer:
    """A fixed offline dataset on the device; uniform sampling with its own torch generator."""

    def __init__(self, dataset: dict[str, np.ndarray], device: str | torch.device, seed: int = 0):
        self.device = torch.device(device)
        put = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32), device=self.device)  # noqa: E731
        self.observations = put(dataset["observations"])  # (N, obs_dim)
        self.actions = put(dataset["actions"])  # (N, act_dim)
        self.rewards = put(dataset["rewards"]).reshape(-1, 1)  # (N, 1)
        self.next_observations = put(dataset["next_observations"])  # (N, obs_dim)
        self.dones = put(dataset["terminals"]).reshape(-1, 1)  # (N, 1)
        self.generator = torch.Generator(self.device).manual_seed(seed)

    def __len__(self) -> int:
        return len(self.observations)

    def sample(self, batch_size: int) -> list[Tensor]:
        """[states, actions, rewards, next_states, dones] as CORL's buffers return them."""
        idx = torch.randint(len(self), (batch_size,), device=self.device, generator=self.generator)
        return [self.observations[idx], self.actions[idx], self.rewards[idx], self.next_observations[idx],
                self.dones[idx]]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "size": len(self)}

    def load_state_dict(self, state: dict) -> None:
        if int(state["size"]) != len(self):
            raise ValueError("the replay-buffer state belongs to another dataset (different size)")
        self.generator.set_state(state["generator"])
