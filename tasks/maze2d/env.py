"""D4RL's maze2d point-mass environment on gymnasium + the official `mujoco` bindings.

Faithful to d4rl/pointmaze/maze_model.py (MazeEnv):
- MuJoCo point mass: timestep 0.01, Euler, no gravity, 20 solver iterations,
  joint damping 1, a sphere of radius 0.1 (density 1000) on two slide joints,
  motors with gear 100 and ctrl in [-1, 1], frame_skip 1.
- qvel is clipped to [-5, 5] before every step.
- obs = (qpos_x, qpos_y, qvel_x, qvel_y), float64; x follows the maze row index.
- sparse reward 1 if ||xy - target|| <= 0.5 (on the state after the step); never terminates.
- reset: a uniformly drawn empty-or-goal cell + U(-0.1, 0.1) per axis, qvel ~ N(0, 0.1).
- target: the 'G' cell exactly (reset_target=False, the setting of every maze2d-v1 task).
The time limit is added by `tasks.make_env` (gymnasium TimeLimit).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from tasks.maze2d.layouts import MazeGrid

PARTICLE_BODY_POS = 1.2  # world position of qpos = (0, 0), both axes
VELOCITY_LIMIT = 5.0
SUCCESS_RADIUS = 0.5


def maze_mjcf(grid: MazeGrid) -> str:
    """MJCF text of D4RL's point_maze model for this grid (same bodies, options and defaults)."""
    walls = "\n".join(
        f'    <geom name="wall_{i}_{j}" type="box" pos="{i + 1.0} {j + 1.0} 0" size="0.5 0.5 0.2" '
        f'conaffinity="1" material="wall"/>'
        for i, j in grid.wall_cells()
    )
    p = PARTICLE_BODY_POS
    return f"""<mujoco model="point_maze">
  <compiler inertiafromgeom="true" angle="radian"/>
  <option timestep="0.01" gravity="0 0 0" iterations="20" integrator="Euler"/>
  <default>
    <joint damping="1" limited="false"/>
    <geom friction=".5 .1 .1" density="1000" margin="0.002" condim="1" contype="2" conaffinity="1"/>
  </default>
  <asset>
    <material name="wall" rgba=".7 .5 .3 1"/>
    <material name="target" rgba=".6 .3 .3 1"/>
  </asset>
  <worldbody>
    <geom name="ground" type="plane" size="40 40 0.25" pos="0 0 -0.1" contype="1" conaffinity="0"/>
    <body name="particle" pos="{p} {p} 0">
      <geom name="particle_geom" type="sphere" size="0.1" rgba="0 0 1 0" contype="1"/>
      <site name="particle_site" pos="0 0 0" size="0.2" rgba="0.3 0.6 0.3 1"/>
      <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
      <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
    </body>
    <site name="target_site" pos="0 0 0" size="0.2" material="target"/>
{walls}
  </worldbody>
  <actuator>
    <motor joint="ball_x" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
    <motor joint="ball_y" ctrlrange="-1 1" ctrllimited="true" gear="100"/>
  </actuator>
</mujoco>
"""


class PointMazeEnv(gym.Env):
    """One point-mass maze; `target` is the goal position in qpos coordinates."""

    metadata = {"render_modes": []}

    def __init__(self, layout: list[str], reward_type: str = "sparse"):
        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        self.grid = MazeGrid(layout)
        self.reward_type = reward_type
        self.model = mujoco.MjModel.from_xml_string(maze_mjcf(self.grid))
        self.data = mujoco.MjData(self.model)
        self.target = np.asarray(self.grid.goal_cell, dtype=np.float64)  # (2,)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._cells = np.asarray(self.grid.empty_and_goal_cells, dtype=np.float64)  # (n_cells, 2)

    # --- state access -------------------------------------------------------------------
    def observation(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel])  # (4,)

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def reward(self, obs: np.ndarray) -> float:
        dist = float(np.linalg.norm(obs[:2] - self.target))
        if self.reward_type == "sparse":
            return 1.0 if dist <= SUCCESS_RADIUS else 0.0
        return float(np.exp(-dist))

    def random_cell_position(self, rng: np.random.Generator) -> np.ndarray:
        """A uniformly drawn empty-or-goal cell plus U(-0.1, 0.1) per axis (D4RL's draw)."""
        cell = self._cells[rng.integers(len(self._cells))]
        return cell + rng.uniform(-0.1, 0.1, size=2)

    # --- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        qpos = self.random_cell_position(self.np_random)
        qvel = self.np_random.normal(0.0, 0.1, size=2)
        self.set_state(qpos, qvel)
        return self.observation(), {"goal": self.target.copy()}

    def physics_step(self, action: np.ndarray) -> np.ndarray:
        """Clip the action and the velocity, advance one 0.01 s Euler step, return the obs."""
        # mj_step runs mj_forward itself, so the velocity clip needs no separate forward pass.
        np.clip(self.data.qvel, -VELOCITY_LIMIT, VELOCITY_LIMIT, out=self.data.qvel)
        self.data.ctrl[:] = np.clip(action, -1.0, 1.0)
        mujoco.mj_step(self.model, self.data)
        return self.observation()

    def step(self, action):
        obs = self.physics_step(np.asarray(action, dtype=np.float64))
        reward = self.reward(obs)
        return obs, reward, False, False, {"goal": self.target.copy(), "success": reward > 0 and self.reward_type == "sparse"}
