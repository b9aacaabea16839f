"""The waypoint controller as a batch policy (one controller per env slot)."""
from __future__ import annotations

import numpy as np

from tasks.maze2d.controller import WaypointController
from tasks.maze2d.layouts import MazeGrid


class ControllerPolicy:
    """`fresh_each_episode=True`: a new controller per episode (plans from the episode's start).
    False with one env slot: D4RL's reference protocol (one controller for all episodes, which
    keeps its waypoints from the first episode because the target never changes)."""

    def __init__(self, grid: MazeGrid, target: np.ndarray, seed: int = 0, fresh_each_episode: bool = True):
        self.grid, self.target, self.seed = grid, np.asarray(target), seed
        self.fresh_each_episode = fresh_each_episode
        self.controllers: list[WaypointController] = []

    def reset(self, episode_ids: np.ndarray) -> None:
        if self.fresh_each_episode or len(self.controllers) != len(episode_ids):
            self.controllers = [WaypointController(self.grid, np.random.default_rng([self.seed, int(e), 2]))
                                for e in episode_ids]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.stack([c.act(o[:2], o[2:4], self.target)[0] for c, o in zip(self.controllers, obs)])
