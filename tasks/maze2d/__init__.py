"""maze2d-{umaze,medium,large}-v1: D4RL's point-mass mazes and their scripted datasets."""
from __future__ import annotations

from tasks.maze2d.env import PointMazeEnv
from tasks.maze2d.layouts import LAYOUTS

# name: (layout, max_episode_steps, REF_MIN, REF_MAX, D4RL dataset size); d4rl/pointmaze/__init__.py
MAZE2D_TASKS = {
    "maze2d-umaze-v1": ("umaze", 300, 23.85, 161.86, 1_000_000),
    "maze2d-medium-v1": ("medium", 600, 13.13, 277.39, 2_000_000),
    "maze2d-large-v1": ("large", 800, 6.7, 273.99, 4_000_000),
}


def make_maze2d_env(layout: str) -> PointMazeEnv:
    return PointMazeEnv(LAYOUTS[layout], reward_type="sparse")


def generate_maze2d_task(spec, steps: int, seed: int, show_progress: bool = True):
    from tasks.maze2d.generate import generate_maze2d

    return generate_maze2d(spec.make_env(), spec.max_episode_steps, steps, seed, show_progress)


def make_controller_policy(spec, seed: int = 0, d4rl_protocol: bool = False):
    """The waypoint controller; d4rl_protocol=True keeps one controller across episodes."""
    from tasks.maze2d.policies import ControllerPolicy

    env = spec.make_env()
    return ControllerPolicy(env.grid, env.target, seed, fresh_each_episode=not d4rl_protocol)
