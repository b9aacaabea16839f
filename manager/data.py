"""Sub-trajectory sampling from an offline dataset in D4RL's raw layout, resident on the device.

A sample is (s_0, a_0, r_1, s_1, ..., s_H) at timescale k: s_i is the observation k*i rows after
the start row, r_{i+1} the sum of the k environment rewards in between times `reward_scale`.

Episode boundaries (docs/manager.md, "End of an episode"):
  - an episode ends at the first row flagged `timeouts` or `terminals`;
  - a timeout row has no successor in its episode (as in D4RL's qlearning_dataset, which drops it):
    the episode's last state is that row's observation;
  - a terminal row keeps its transition (D4RL pairs it with the next row; in antmaze v2 the goal
    reward sits on exactly these rows): the episode's last state is the row after it, and the step
    that contains it has not_done = 0;
  - sequences never cross a boundary: a position past the episode's last state is clamped to it,
    a manager step cut short by the end sums only the rewards up to the end, and steps that start
    at or after the last state get mask = 0 (every loss ignores them).
Start rows are all rows with at least one transition after them in their episode.

Sampling is uniform over start rows, or prioritised (TD-MPC's default: P(i) ~ p_i^alpha with
importance weights (S P(i))^-beta / max, new priorities from the agent's TD errors; every start
row begins at priority 1, as TD-MPC's buffer does for the first transitions it stores).

Nothing in `sample` reads back to the host; all indexing happens on the device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from common.normalization import normalized_tensor, observation_stats
from tasks.datasets import DatasetError, episode_timeouts


@dataclass
class SequenceBatch:
    obs: Tensor       # (H+1, B, obs_dim) normalised observations
    actions: Tensor   # (H, B, act_dim) dataset actions (flat agents; the Manager infers its own)
    rewards: Tensor   # (H, B) scaled k-step reward sums
    not_done: Tensor  # (H, B) 0 where the step ends in a terminal
    mask: Tensor      # (H, B) 1 where the step starts before the episode's last state
    index: Tensor     # (B,) which start rows (positions in sampler.starts) were drawn
    weight: Tensor    # (B,) importance weights (ones under uniform sampling)


def episode_last_state(terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """For every row, the index of the last state of its episode (see the module docstring)."""
    n = len(terminals)
    ends = np.flatnonzero(terminals | timeouts)
    next_end = np.searchsorted(ends, np.arange(n))  # first flagged row at or after each row
    end = np.where(next_end < len(ends), ends[np.minimum(next_end, len(ends) - 1)], n - 1)
    keeps_successor = terminals[end] & ~timeouts[end] & (end + 1 < n)
    return np.where(keeps_successor, end + 1, end).astype(np.int64)


class SequenceSampler:
    """Uniform sampling of sub-trajectories of `horizon` steps at timescale `k`."""

    def __init__(self, dataset: dict[str, np.ndarray], horizon: int, k: int = 1, reward_scale: float = 1.0,
                 obs_mean: np.ndarray | None = None, obs_std: np.ndarray | None = None,
                 device: str | torch.device = "cpu", seed: int = 0, max_episode_steps: int | None = None,
                 prioritized: bool = False, alpha: float = 0.6, beta: float = 0.4):
        if horizon < 1 or k < 1:
            raise ValueError(f"horizon and k must be >= 1 (got horizon={horizon}, k={k})")
        observations = np.asarray(dataset["observations"], dtype=np.float32)
        n = len(observations)
        terminals = np.asarray(dataset["terminals"]).astype(bool).reshape(n)
        timeouts = episode_timeouts(dataset, max_episode_steps).reshape(n)
        last = episode_last_state(terminals, timeouts)
        starts = np.flatnonzero(np.arange(n) < last)
        if len(starts) == 0:
            raise DatasetError("the dataset has no transition inside an episode (every row ends one); "
                               "check its terminals/timeouts")
        if obs_mean is None or obs_std is None:
            obs_mean, obs_std = observation_stats(observations)
        self.obs_mean = np.asarray(obs_mean, dtype=np.float32)
        self.obs_std = np.asarray(obs_std, dtype=np.float32)
        self.horizon, self.k, self.reward_scale = horizon, k, float(reward_scale)
        self.device = torch.device(device)
        put = lambda a, dtype: torch.as_tensor(a, dtype=dtype, device=self.device)  # noqa: E731
        self.observations = normalized_tensor(observations, put(self.obs_mean, torch.float32),
                                              put(self.obs_std, torch.float32))  # (N, obs_dim)
        self.actions = put(np.asarray(dataset["actions"], dtype=np.float32), torch.float32)  # (N, act_dim)
        self.rewards = put(np.asarray(dataset["rewards"], dtype=np.float32).reshape(n), torch.float32)  # (N,)
        self.terminals = put(terminals, torch.bool)  # (N,)
        self.last_state = put(last, torch.long)  # (N,)
        self.starts = put(starts, torch.long)  # (S,)
        self.step_offsets = torch.arange(horizon + 1, device=self.device) * k  # (H+1,)
        self.reward_offsets = torch.arange(k, device=self.device)  # (k,)
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.prioritized, self.alpha, self.beta = prioritized, alpha, beta
        self.priorities = torch.ones(len(starts), device=self.device) if prioritized else None  # (S,)

    def __len__(self) -> int:
        return len(self.starts)


    def sample(self, batch_size: int) -> SequenceBatch:
        if self.prioritized:
            probs = self.priorities ** self.alpha
            pick = torch.multinomial(probs, batch_size, replacement=True, generator=self.generator)  # (B,)
            weight = (len(self.starts) * probs[pick] / probs.sum()) ** -self.beta
            weight = weight / weight.max()
        else:
            pick = torch.randint(len(self.starts), (batch_size,), device=self.device, generator=self.generator)
            weight = torch.ones(batch_size, device=self.device)
        return self.sequences_from(self.starts[pick], pick, weight)

    def update_priorities(self, index: Tensor, priorities: Tensor) -> None:
        """New priorities (B,) of the start rows `index` (B,) drawn by `sample`; a no-op for uniform sampling
        (where the agent computes no priorities)."""
        if self.prioritized:
            self.priorities[index] = priorities.detach().to(self.priorities.dtype)

    def sequences_from(self, start: Tensor, start_index: Tensor | None = None,
                       weight: Tensor | None = None) -> SequenceBatch:
        """The sub-trajectories that begin at dataset rows `start` (B,) = starts[start_index]."""
        last = self.last_state[start]  # (B,)
        position = start + self.step_offsets[:, None]  # (H+1, B), unclamped
        index = torch.minimum(position, last)  # (H+1, B)
        seg_start, seg_end = index[:-1], index[1:]  # (H, B): rows [seg_start, seg_end) of each step
        rows = seg_start[..., None] + self.reward_offsets  # (H, B, k)
        in_segment = rows < seg_end[..., None]
        rewards = (self.rewards[rows.clamp(max=len(self.rewards) - 1)] * in_segment).sum(-1) * self.reward_scale
        mask = position[:-1] < last  # (H, B)
        ends_episode = (seg_end == last) & mask & self.terminals[(last - 1).clamp(min=0)]
        return SequenceBatch(
            obs=self.observations[index],  # (H+1, B, obs_dim)
            actions=self.actions[torch.minimum(seg_start, last - 1)],  # (H, B, act_dim)
            rewards=rewards,
            not_done=(~ends_episode).float(),
            mask=mask.float(),
            index=start_index if start_index is not None else torch.zeros_like(start),
            weight=weight if weight is not None else torch.ones(start.shape, device=self.device),
        )

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "num_starts": len(self.starts),
                "priorities": self.priorities}

    def load_state_dict(self, state: dict) -> None:
        if int(state["num_starts"]) != len(self.starts):
            raise ValueError("the sampler state belongs to another dataset (different number of start rows)")
        self.generator.set_state(state["generator"])
        if self.prioritized and state.get("priorities") is not None:
            self.priorities.copy_(state["priorities"])
