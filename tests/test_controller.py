"""The waypoint controller: shortest grid paths, D4RL's waypoint jitter, reaching every goal."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from tasks import evaluate_policy, get_task, make_env, make_policy
from tasks.maze2d.controller import WaypointController
from tasks.maze2d.layouts import LAYOUTS, MazeGrid


def bfs_distances(grid: MazeGrid, target):
    dist = {target: 0}
    queue = deque([target])
    while queue:
        i, j = queue.popleft()
        for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nxt = (i + di, j + dj)
            if grid.is_free(nxt) and nxt not in dist:
                dist[nxt] = dist[(i, j)] + 1
                queue.append(nxt)
    return dist


@pytest.mark.parametrize("layout", ["umaze", "medium", "large"])
def test_waypoints_follow_a_shortest_path_with_d4rl_jitter(layout):
    grid = MazeGrid(LAYOUTS[layout])
    target = grid.goal_cell
    dist = bfs_distances(grid, target)
    controller = WaypointController(grid, np.random.default_rng(0))
    for start in grid.empty_and_goal_cells:
        controller.plan(np.array(start, float), target)
        waypoints = np.array(controller.waypoints)
        cells = np.ceil(waypoints - 1e-9).astype(int)  # jitter is -U(0, 0.2): ceil recovers the cell
        assert tuple(cells[-1]) == target and tuple(waypoints[-1]) == target  # last one exact
        assert len(waypoints) == max(dist[start], 1)
        path = [start] + [tuple(c) for c in cells]
        for a, b in zip(path[:-1], path[1:]):
            assert grid.is_free(b) and (abs(a[0] - b[0]) + abs(a[1] - b[1]) <= 1)
        jitter = cells[:-1] - waypoints[:-1]
        assert np.all((jitter >= 0) & (jitter <= 0.2))


@pytest.mark.parametrize("name", ["maze2d-umaze-v1", "maze2d-medium-v1", "maze2d-large-v1"])
def test_controller_reaches_the_goal_in_each_maze(name):
    env = make_env(name)
    spec = get_task(name)
    grid = env.unwrapped.grid
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        controller = WaypointController(grid, np.random.default_rng(seed))
        for t in range(spec.max_episode_steps):
            action, _ = controller.act(obs[:2], obs[2:], env.unwrapped.target)
            obs, *_ = env.step(action)
            if np.linalg.norm(obs[:2] - env.unwrapped.target) < 0.1:
                break
        else:
            pytest.fail(f"{name} seed {seed}: controller did not reach {env.unwrapped.target} from its start")


def test_per_episode_controller_beats_d4rl_protocol_and_random():
    name = "maze2d-medium-v1"
    fresh = evaluate_policy(name, make_policy(name, "controller"), episodes=8, seed=0)
    stale = evaluate_policy(name, make_policy(name, "controller", d4rl_protocol=True), episodes=8, seed=0, num_envs=1)
    rand = evaluate_policy(name, make_policy(name, "random"), episodes=8, seed=0)
    assert np.all(fresh > 0)  # every episode reaches the goal region
    assert fresh.mean() > stale.mean() > rand.mean()


def test_d4rl_protocol_keeps_waypoints_across_episodes():
    spec = get_task("maze2d-umaze-v1")
    policy = spec.scripted_policies["controller"](spec, 0, True)
    policy.reset(np.array([0]))
    env = make_env(spec.name)
    obs, _ = env.reset(seed=0)
    policy(obs[None])
    first = list(policy.controllers[0].waypoints)
    policy.reset(np.array([1]))
    obs, _ = env.reset(seed=1)
    policy(obs[None])
    assert policy.controllers[0].waypoints == first  # the target never changes, so no re-planning
