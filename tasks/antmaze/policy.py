"""D4RL's antmaze data-collection controller: BFS waypoints through the maze + the goal-reaching
ant policy (scripts/generation/generate_ant_maze_datasets.py, maze_env.create_navigation_policy).

Per step and per ant, as D4RL:
- the ant's cell and the goal's cell by the map's position -> cell rule (layouts.py);
- the next cell on a BFS shortest path (D4RL's visiting order); if it is the goal's cell the
  waypoint is the goal itself, else that cell's position plus fresh U(0, 1) noise per axis;
- the policy's input: obs[2:29] (torso height, orientation, joint angles, all velocities) and the
  direction to the waypoint rescaled to norm 10 (29 numbers);
- rlkit's TanhGaussianPolicy: two ReLU layers of 256, a mean head and a log-std head (clamped to
  [-20, 2]); D4RL called policy.get_action, which *samples*: a = tanh(mean + std * N(0, 1)).
  `deterministic=True` gives tanh(mean) instead;
- D4RL's --noisy datasets then add N(0, 0.2) per action dimension and clip to [-1, 1].
If no path exists (the ant outside the map), the previous action is repeated, as the TAP fork's
generation script does (D4RL's raised an error).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tasks.antmaze.checkpoint import TanhGaussianWeights, load_goal_reaching_weights
from tasks.antmaze.layouts import MazeMap

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
GOAL_DIRECTION_NORM = 10.0
ACTION_NOISE_STD = 0.2
MIN_BATCH = 16


class GoalReachingPolicy(nn.Module):
    """rlkit's TanhGaussianPolicy forward pass on D4RL's weights."""

    def __init__(self, weights: TanhGaussianWeights):
        super().__init__()
        self.hidden = nn.ModuleList()
        for w, b in weights.hidden:
            layer = nn.Linear(w.shape[1], w.shape[0])
            layer.weight.data.copy_(w)
            layer.bias.data.copy_(b)
            self.hidden.append(layer)
        self.mean_head = nn.Linear(weights.mean[0].shape[1], weights.act_dim)
        self.mean_head.weight.data.copy_(weights.mean[0])
        self.mean_head.bias.data.copy_(weights.mean[1])
        self.log_std_head = nn.Linear(weights.log_std[0].shape[1], weights.act_dim)
        self.log_std_head.weight.data.copy_(weights.log_std[0])
        self.log_std_head.bias.data.copy_(weights.log_std[1])
        self.obs_dim, self.act_dim = weights.obs_dim, weights.act_dim
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def load(cls, path=None) -> "GoalReachingPolicy":
        return cls(load_goal_reaching_weights(path))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log_std) of the pre-tanh Gaussian, each (batch, act_dim)."""
        h = obs
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.mean_head(h), torch.clamp(self.log_std_head(h), LOG_STD_MIN, LOG_STD_MAX)

    def act(self, obs: np.ndarray, noise: np.ndarray | None = None) -> np.ndarray:
        """tanh(mean + std * noise) for (batch, obs_dim) inputs; noise None: tanh(mean).

        Runs on one thread: for these small matrices torch's thread pool only adds waiting
        (measured 0.3 ms on one thread against 60 ms on two busy cores). Batches are padded to at
        least MIN_BATCH rows: CPU kernels for 1-3 rows round differently from those for larger
        batches, and the padding makes each row's result independent of the batch size (so a
        generated file or an evaluation does not depend on how many ants run at once)."""
        n = len(obs)
        padded = np.zeros((max(n, MIN_BATCH), obs.shape[1]), np.float32)
        padded[:n] = obs
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                mean, log_std = self(torch.from_numpy(padded))
                mean, log_std = mean[:n], log_std[:n]
                if noise is not None:
                    mean = mean + log_std.exp() * torch.as_tensor(noise, dtype=torch.float32)
                return torch.tanh(mean).numpy().astype(np.float64)
        finally:
            torch.set_num_threads(threads)


def policy_inputs(obs: np.ndarray, waypoint_xy: np.ndarray) -> np.ndarray:
    """D4RL's _goal_reaching_policy_fn input: obs[2:29] + (waypoint - xy) rescaled to norm 10."""
    direction = waypoint_xy - obs[:, :2]
    norm = np.linalg.norm(direction, axis=1, keepdims=True)
    direction = direction / np.maximum(norm, 1e-12) * GOAL_DIRECTION_NORM
    return np.concatenate([obs[:, 2:29], direction], axis=1)


class WaypointNavigator:
    """Batched D4RL navigation: BFS waypoint per ant, then the goal-reaching policy.

    `act(obs, goals, rngs)` draws the waypoint noise and the policy's sampling noise from one
    numpy Generator per ant; `mode` is 'sample' (D4RL's get_action), 'mean' (tanh(mean)) or
    'noisy' (sample + N(0, 0.2), clipped: D4RL's data collection).
    """

    MODES = ("sample", "mean", "noisy")

    def __init__(self, maze: MazeMap, policy: GoalReachingPolicy, mode: str = "noisy"):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.maze, self.policy, self.mode = maze, policy, mode
        self.no_path_steps = 0  # steps on which no BFS path existed (previous action repeated)

    def waypoints(self, obs: np.ndarray, goals: np.ndarray, rngs) -> tuple[np.ndarray, np.ndarray]:
        """(waypoints (n, 2), has_path (n,)) for each ant."""
        waypoints = np.empty((len(obs), 2))
        has_path = np.ones(len(obs), bool)
        for k, (xy, goal, rng) in enumerate(zip(obs[:, :2], goals, rngs)):
            target_cell = self.maze.xy_to_rowcol(goal)
            cell = self.maze.next_cell(self.maze.xy_to_rowcol(xy), target_cell)
            if cell is None:
                has_path[k] = False
                waypoints[k] = goal
            elif cell == target_cell:
                waypoints[k] = goal
            else:
                waypoints[k] = self.maze.rowcol_to_xy(cell, rng)
        return waypoints, has_path

    def act(self, obs: np.ndarray, goals: np.ndarray, rngs, previous: np.ndarray | None = None) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        waypoints, has_path = self.waypoints(obs, np.asarray(goals, dtype=np.float64), rngs)
        act_dim = self.policy.act_dim
        noise = None if self.mode == "mean" else np.stack([rng.standard_normal(act_dim) for rng in rngs])
        actions = self.policy.act(policy_inputs(obs, waypoints), noise)
        if self.mode == "noisy":
            extra = np.stack([rng.standard_normal(act_dim) for rng in rngs]) * ACTION_NOISE_STD
            actions = np.clip(actions + extra, -1.0, 1.0)
        if not has_path.all():
            self.no_path_steps += int((~has_path).sum())
            if previous is not None:
                actions[~has_path] = previous[~has_path]
        return actions


class ExpertPolicy:
    """The navigator as a batch policy for `tasks.evaluation.evaluate_policy`.

    The goal of each episode comes from the env's reset info (`reset_info`), as D4RL's controller
    read env.target_goal. Randomness is drawn per episode from (seed, episode, 3).
    """

    def __init__(self, maze: MazeMap, policy: GoalReachingPolicy, mode: str = "mean", seed: int = 0):
        self.navigator = WaypointNavigator(maze, policy, mode)
        self.seed = seed
        self.rngs: list[np.random.Generator] = []
        self.goals: np.ndarray | None = None
        self.previous: np.ndarray | None = None

    def reset(self, episode_ids: np.ndarray) -> None:
        self.rngs = [np.random.default_rng([self.seed, int(e), 3]) for e in episode_ids]
        self.goals, self.previous = None, None

    def reset_info(self, info: dict) -> None:
        self.goals = np.asarray(info["goal"], dtype=np.float64).reshape(len(self.rngs), 2)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.goals is None:
            raise RuntimeError("the expert needs each episode's goal: call reset_info(reset info) "
                               "after resetting (tasks.evaluation.evaluate_policy does)")
        actions = self.navigator.act(obs, self.goals, self.rngs, self.previous)
        self.previous = actions
        return actions.astype(np.float32)
