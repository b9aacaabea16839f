"""Physics and task facts of the maze2d envs, checked against D4RL's model."""
from __future__ import annotations

import numpy as np
import pytest

from tasks import TASKS, get_task, make_env
from tasks.maze2d.env import PointMazeEnv
from tasks.maze2d.layouts import LAYOUTS

MAZES = sorted(n for n in TASKS if n.startswith("maze2d"))


def env_at(name, qpos, qvel=(0.0, 0.0)) -> PointMazeEnv:
    env = make_env(name).unwrapped
    env.reset(seed=0)
    env.set_state(np.asarray(qpos, float), np.asarray(qvel, float))
    return env


def push(env, action, steps=200):
    for _ in range(steps):
        obs = env.physics_step(np.asarray(action, float))
    return obs


def test_model_constants():
    env = make_env("maze2d-umaze-v1").unwrapped
    assert env.model.opt.timestep == pytest.approx(0.01)
    assert env.model.opt.gravity.tolist() == [0, 0, 0]
    assert env.model.body_mass[1] == pytest.approx(4 / 3 * np.pi * 0.1**3 * 1000)  # sphere r 0.1, density 1000
    assert env.model.dof_damping.tolist() == [1.0, 1.0]
    assert env.model.actuator_gear[:, 0].tolist() == [100.0, 100.0]
    assert env.observation_space.shape == (4,) and env.action_space.shape == (2,)
    assert env.action_space.low.tolist() == [-1, -1] and env.action_space.high.tolist() == [1, 1]


@pytest.mark.parametrize("action, axis, expected", [((0, -1), 1, 0.40), ((-1, 0), 0, 0.40), ((1, 0), 0, 1.20)])
def test_wall_stops_ball_where_d4rl_would(action, axis, expected):
    # umaze: cell (1,1) has walls at (1,0), (0,1) and (2,1); cell (i,j) is free in [i-0.6, i+0.2].
    obs = push(env_at("maze2d-umaze-v1", (1.0, 1.0)), action)
    assert obs[axis] == pytest.approx(expected, abs=0.01)
    assert obs[1 - axis] == pytest.approx(1.0, abs=1e-6)
    assert abs(obs[2 + axis]) < 1e-6  # at rest against the wall


def test_open_corridor_lets_ball_through():
    # umaze row 1 is "#GOO#": pushing +y from (1,1) reaches cell (1,3) and stops at 3.2.
    obs = push(env_at("maze2d-umaze-v1", (1.0, 1.0)), (0, 1), steps=400)
    assert obs[1] == pytest.approx(3.2, abs=0.01)


def test_one_euler_step_and_velocity_clip():
    env = env_at("maze2d-medium-v1", (1.0, 1.0))
    mass = env.model.body_mass[1]
    obs = env.physics_step(np.array([1.0, 0.0]))
    # MuJoCo's Euler integrates joint damping implicitly: v1 = dt * (gear * ctrl / m) / (1 + dt * b / m)
    dv = 0.01 * (100.0 / mass) / (1 + 0.01 * 1.0 / mass)
    assert obs[2] == pytest.approx(dv, rel=1e-9)
    assert obs[0] == pytest.approx(1.0 + obs[2] * 0.01, rel=1e-6)  # semi-implicit Euler position update
    env.set_state(np.array([1.0, 1.0]), np.array([0.0, 9.0]))
    obs = env.physics_step(np.array([0.0, 0.0]))
    assert obs[3] <= 5.0 and obs[3] > 4.9  # clipped to 5 before the step, then damped slightly
    obs = env.physics_step(np.array([3.0, 0.0]))  # actions are clipped to [-1, 1]
    assert obs[2] == pytest.approx(dv, rel=1e-9)


@pytest.mark.parametrize("name, goal", [("maze2d-umaze-v1", (1, 1)), ("maze2d-medium-v1", (6, 6)),
                                        ("maze2d-large-v1", (7, 9))])
def test_target_is_goal_cell_and_reward_is_sparse(name, goal):
    env = make_env(name)
    env.reset(seed=1)
    assert env.unwrapped.target.tolist() == list(goal)
    env.unwrapped.set_state(np.array(goal, float) + [0.45, 0.0], np.zeros(2))
    _, reward, terminated, truncated, _ = env.step(np.zeros(2))
    assert reward == 1.0 and not terminated and not truncated
    env.unwrapped.set_state(np.array(goal, float) + [0.0, -0.55], np.zeros(2))
    _, reward, *_ = env.step(np.zeros(2))
    assert reward == 0.0


@pytest.mark.parametrize("name", MAZES)
def test_time_limit_and_no_termination(name):
    env = make_env(name)
    env.reset(seed=0)
    limit = get_task(name).max_episode_steps
    for t in range(limit):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        assert truncated == (t == limit - 1)


def test_reset_distribution_covers_free_cells_with_d4rl_noise():
    env = make_env("maze2d-medium-v1")
    cells = LAYOUTS["medium"]
    free = {(i, j) for i, r in enumerate(cells) for j, c in enumerate(r) if c != "#"}
    seen, vel = set(), []
    for seed in range(600):
        obs, _ = env.reset(seed=seed)
        cell = tuple(int(v) for v in np.round(obs[:2]))
        assert cell in free
        assert np.all(np.abs(obs[:2] - cell) <= 0.1)
        seen.add(cell)
        vel.append(obs[2:])
    assert seen == free  # every empty-or-goal cell is a start cell
    assert np.std(vel) == pytest.approx(0.1, rel=0.15)


def test_walls_sit_at_d4rl_coordinates():
    env = make_env("maze2d-large-v1").unwrapped
    layout = LAYOUTS["large"]
    import mujoco

    for i, row in enumerate(layout):
        for j, tile in enumerate(row):
            gid = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_GEOM, f"wall_{i}_{j}")
            assert (gid >= 0) == (tile == "#")
            if gid >= 0:
                assert env.model.geom_pos[gid].tolist() == [i + 1.0, j + 1.0, 0.0]
                assert env.model.geom_size[gid].tolist() == [0.5, 0.5, 0.2]


def test_same_seed_same_trajectory():
    def rollout(seed):
        env = make_env("maze2d-umaze-v1")
        env.action_space.seed(seed)
        obs = [env.reset(seed=seed)[0]]
        for _ in range(50):
            obs.append(env.step(env.action_space.sample())[0])
        return np.array(obs)

    assert np.array_equal(rollout(4), rollout(4))
    assert not np.array_equal(rollout(4), rollout(5))
