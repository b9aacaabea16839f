"""Regenerate an antmaze dataset with D4RL's procedure, batched over many ants.

scripts/generation/generate_ant_maze_datasets.py --noisy [--multi_start] [--multigoal], then
scripts/generation/relabel_antmaze_rewards.py (sparse), as the published v2 files were made:
- the training map (U_MAZE, BIG_MAZE, HARDEST_MAZE; the TAP fork's ULTRA_MAZE), env with
  eval=False (episodes never end early);
- each episode: a goal from the map's goal sampler (play and the umaze task: the map's G cells;
  diverse: any free cell), a reset (multi-start tasks: a random reset cell), then the navigation
  controller (policy.py) with the policy's sampled action plus N(0, 0.2), clipped, for
  max_episode_steps + 1 = 1001 steps (D4RL flags the timeout when its step counter, checked
  before incrementing, reaches 1000), the last step flagged in `timeouts`; then a fresh episode;
- rows as D4RL appends them: observations = the obs *before* the step, actions, infos/goal = the
  commanded goal, infos/qpos / infos/qvel = the simulator state *after* the step;
- relabelling against one fixed target, a single draw of the evaluation goal distribution (D4RL
  used env.target_goal of a freshly made eval env): rewards[t] = terminals[t] =
  ||observations[t + 1, :2] - target|| <= 0.5, and 0 for the last row (D4RL compares the next
  row even across an episode boundary; kept).
Episode e draws all its randomness from the seed sequence (seed, e), so the file depends on the
seed only, not on how many ants run at once.
"""
from __future__ import annotations

import numpy as np

from common.progress import progress_bar
from tasks.antmaze import AntMazeDatasetRecipe
from tasks.antmaze.env import OBS_DIM, SUCCESS_RADIUS, AntMazeEnv
from tasks.antmaze.layouts import MazeMap, maze_maps
from tasks.antmaze.policy import GoalReachingPolicy, WaypointNavigator

GENERATION_MAX_EPISODE_STEPS = 1000  # the script's --max_episode_steps default
EPISODE_ROWS = GENERATION_MAX_EPISODE_STEPS + 1
DEFAULT_NUM_ENVS = 50


def episode_rng(seed: int, episode: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, episode]))


def relabel_target(test_map: MazeMap, seed: int) -> np.ndarray:
    """The fixed target of the reward labels: one draw of the eval env's goal sampler."""
    return test_map.sample_goal(np.random.default_rng(np.random.SeedSequence([seed, 2**31 - 1])))


def sparse_labels(observations: np.ndarray, target: np.ndarray) -> np.ndarray:
    """D4RL's relabel_antmaze_rewards.py (sparse): 1 where the *next* row's xy is within 0.5."""
    labels = np.zeros(len(observations), np.float32)
    labels[:-1] = np.linalg.norm(observations[1:, :2] - target.astype(np.float32), axis=1) <= SUCCESS_RADIUS
    return labels


def generate_antmaze(recipe: AntMazeDatasetRecipe, steps: int, seed: int, show_progress: bool = True,
                     num_envs: int = DEFAULT_NUM_ENVS, policy_file=None) -> dict[str, np.ndarray]:
    """Arrays in D4RL's antmaze layout; deterministic for a given seed (any num_envs)."""
    train_map, test_map = maze_maps(recipe.maze)
    goal_cells = train_map.free_cells if recipe.multi_goal else (train_map.goal_cells or train_map.free_cells)
    navigator = WaypointNavigator(train_map, GoalReachingPolicy.load(policy_file), mode="noisy")
    episodes = -(-steps // EPISODE_ROWS)
    num_envs = max(1, min(num_envs, episodes))
    envs = [AntMazeEnv(train_map, goal_cells=goal_cells, multi_start=recipe.multi_start) for _ in range(num_envs)]
    nq, nv = envs[0].model.nq, envs[0].model.nv
    data = {
        "observations": np.empty((steps, OBS_DIM), np.float32),
        "actions": np.empty((steps, 8), np.float32),
        "rewards": np.empty(steps, np.float32),
        "terminals": np.empty(steps, bool),
        "timeouts": np.zeros(steps, bool),
        "infos/goal": np.empty((steps, 2), np.float32),
        "infos/qpos": np.empty((steps, nq), np.float32),
        "infos/qvel": np.empty((steps, nv), np.float32),
    }
    desc = f"generate antmaze-{recipe.maze} ({steps} steps, {num_envs} ants at once)"
    with progress_bar(total=steps, desc=desc, enabled=show_progress) as bar:
        for first in range(0, episodes, num_envs):
            ids = list(range(first, min(first + num_envs, episodes)))
            slots = envs[:len(ids)]
            rngs = [episode_rng(seed, e) for e in ids]
            goals = np.stack([env.sample_goal(rng) for env, rng in zip(slots, rngs)])
            obs = np.stack([env.reset_ant(rng) for env, rng in zip(slots, rngs)])
            starts = np.array([e * EPISODE_ROWS for e in ids])
            lengths = np.minimum(EPISODE_ROWS, steps - starts)
            previous = None
            for t in range(int(lengths.max())):
                actions = navigator.act(obs, goals, rngs, previous)
                previous = actions
                live = np.flatnonzero(t < lengths)
                rows = starts[live] + t
                data["observations"][rows] = obs[live]
                data["actions"][rows] = actions[live]
                data["infos/goal"][rows] = goals[live]
                for k in live:
                    obs[k] = slots[k].physics_step(actions[k])
                    data["infos/qpos"][starts[k] + t] = slots[k].data.qpos
                    data["infos/qvel"][starts[k] + t] = slots[k].data.qvel
                if t == GENERATION_MAX_EPISODE_STEPS:
                    data["timeouts"][rows] = True
                bar.update(len(live))
    target = relabel_target(test_map, seed)
    data["rewards"][:] = sparse_labels(data["observations"], target)
    data["terminals"][:] = data["rewards"] > 0
    return data
