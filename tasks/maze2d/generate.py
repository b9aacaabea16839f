"""Regenerate a maze2d-*-v1 dataset with D4RL's procedure.

scripts/generation/generate_maze2d_datasets.py (--noisy) followed by relabel_maze2d_rewards.py
(--relabel_type sparse), as D4RL made the published v1 files:
- one continuous run of the waypoint controller with N(0, 0.5) action noise, clipped to [-1, 1];
- when the controller reaches its goal, or after max_episode_steps steps, a new random goal
  (empty-or-goal cell + U(-0.1, 0.1)) is drawn without resetting the env, and that step is
  marked in `timeouts` (the published files have no terminal states: `terminals` is all False);
- D4RL's loop keeps the pre-step observation after such a step, so the first row of the next
  segment repeats the last observation of the previous one (infos/qpos, infos/qvel hold the
  true state). Kept as D4RL has it: see docs/tasks.md;
- rewards relabelled from the stored observation: 1 if ||obs[t, :2] - G|| <= 0.5 for the fixed
  'G' cell of the task, whatever goal the controller was steering to.
"""
from __future__ import annotations

import numpy as np

from common.progress import progress_bar
from tasks.maze2d.controller import WaypointController
from tasks.maze2d.env import SUCCESS_RADIUS, PointMazeEnv

ACTION_NOISE_STD = 0.5


def generate_maze2d(env: PointMazeEnv, max_episode_steps: int, steps: int, seed: int,
                    show_progress: bool = True) -> dict[str, np.ndarray]:
    """Arrays in D4RL's maze2d layout; deterministic for a given seed."""
    env_seed, controller_seq, noise_seq = np.random.SeedSequence(seed).spawn(3)
    controller = WaypointController(env.grid, np.random.default_rng(controller_seq))
    noise_rng = np.random.default_rng(noise_seq)

    data = {
        "observations": np.empty((steps, 4), np.float32),
        "actions": np.empty((steps, 2), np.float32),
        "rewards": np.empty(steps, np.float32),
        "terminals": np.zeros(steps, bool),
        "timeouts": np.empty(steps, bool),
        "infos/goal": np.empty((steps, 2), np.float32),
        "infos/qpos": np.empty((steps, 2), np.float32),
        "infos/qvel": np.empty((steps, 2), np.float32),
    }
    obs, _ = env.reset(seed=int(env_seed.generate_state(1)[0]))
    goal = env.random_cell_position(env.np_random)
    episode_step = 0
    with progress_bar(total=steps, desc=f"generate maze2d ({steps} steps)", enabled=show_progress) as bar:
        for t in range(steps):
            action, done = controller.act(obs[:2], obs[2:], goal)
            action = np.clip(action + noise_rng.standard_normal(2) * ACTION_NOISE_STD, -1.0, 1.0)
            if episode_step >= max_episode_steps:
                done = True
            data["observations"][t] = obs
            data["actions"][t] = action
            data["timeouts"][t] = done
            data["infos/goal"][t] = goal
            data["infos/qpos"][t] = env.data.qpos
            data["infos/qvel"][t] = env.data.qvel
            next_obs = env.physics_step(action)
            episode_step += 1
            if done:
                goal = env.random_cell_position(env.np_random)
                episode_step = 0
            else:
                obs = next_obs
            if (t + 1) % 10_000 == 0:
                bar.update(10_000)
        bar.update(steps % 10_000)
    distance = np.linalg.norm(data["observations"][:, :2] - env.target.astype(np.float32), axis=1)
    data["rewards"][:] = distance <= SUCCESS_RADIUS
    return data
