"""D4RL's ant maze (d4rl/locomotion/{ant,maze_env,goal_reaching_env}.py) on gymnasium + `mujoco`.

The model is D4RL's assets/ant.xml with the maze's wall blocks appended to the worldbody, built as
an MJCF string at run time. Facts kept from D4RL:
- RK4, timestep 0.02, frame_skip 5 (one env step = 0.1 s); joint defaults armature 1, damping 1,
  limited; geom defaults condim 3, conaffinity 0, margin 0.01, friction (1, 0.5, 0.5),
  solref (0.02, 1), solimp (0.8, 0.8, 0.01), density 5; eight motors with gear 1 and
  ctrlrange +-30; actions in [-1, 1] are scaled to torques 30 a (D4RL's NormalizedBoxEnv);
- wall blocks: boxes of half-size (2, 2, 1) centred at (4 j - 4, 4 i - 4, 1) for each wall cell
  (i, j), contype = conaffinity = 1 (see layouts.py);
- obs = qpos[:15] + qvel[:14] (29-D, x and y included: expose_all_qpos=True, eval=True so no goal
  is appended);
- reset: qpos = qpos0 + U(-0.1, 0.1) (torso at height 0.75, upright, joints at 0), qvel = 0.1 N(0, 1);
  multi-start resets (dataset generation only) put the torso's xy at D4RL's random reset location;
- goal: drawn from the map's goal sampler (the G cell of the test map plus one-sided noise); the v2
  envs draw a new goal at every reset;
- sparse reward 1 when ||xy - goal|| <= 0.5 after the step, and the episode then ends
  (terminated=True, D4RL's eval=True). The time limit is added by `tasks.make_env`.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from tasks.antmaze.layouts import MazeMap

TIMESTEP = 0.02
FRAME_SKIP = 5
TORQUE_LIMIT = 30.0
SUCCESS_RADIUS = 0.5
OBS_DIM, ACT_DIM = 29, 8
TORSO_HEIGHT = 0.75
RESET_NOISE = 0.1


def _leg(name: str, aux: str, dx: float, dy: float, hip: str, ankle: str, ankle_axis: str,
         ankle_range: str, leg_geom: str, ankle_geom: str) -> str:
    return f"""      <body name="{name}" pos="0 0 0">
        <geom name="{aux}_geom" type="capsule" size="0.08" fromto="0.0 0.0 0.0 {dx} {dy} 0.0"/>
        <body name="{aux}" pos="{dx} {dy} 0">
          <joint name="{hip}" type="hinge" pos="0.0 0.0 0.0" axis="0 0 1" range="-30 30"/>
          <geom name="{leg_geom}" type="capsule" size="0.08" fromto="0.0 0.0 0.0 {dx} {dy} 0.0"/>
          <body pos="{dx} {dy} 0">
            <joint name="{ankle}" type="hinge" pos="0.0 0.0 0.0" axis="{ankle_axis}" range="{ankle_range}"/>
            <geom name="{ankle_geom}" type="capsule" size="0.08" fromto="0.0 0.0 0.0 {2 * dx} {2 * dy} 0.0"/>
          </body>
        </body>
      </body>"""


def ant_maze_mjcf(maze: MazeMap | None) -> str:
    """MJCF text: D4RL's ant.xml (visual-only parts dropped) plus the maze's wall blocks."""
    legs = "\n".join([
        _leg("front_left_leg", "aux_1", 0.2, 0.2, "hip_1", "ankle_1", "-1 1 0", "30 70",
             "left_leg_geom", "left_ankle_geom"),
        _leg("front_right_leg", "aux_2", -0.2, 0.2, "hip_2", "ankle_2", "1 1 0", "-70 -30",
             "right_leg_geom", "right_ankle_geom"),
        _leg("back_leg", "aux_3", -0.2, -0.2, "hip_3", "ankle_3", "-1 1 0", "-70 -30",
             "back_leg_geom", "third_ankle_geom"),
        _leg("right_back_leg", "aux_4", 0.2, -0.2, "hip_4", "ankle_4", "1 1 0", "30 70",
             "rightback_leg_geom", "fourth_ankle_geom"),
    ])
    blocks = "\n".join(
        f'    <geom name="block_{i}_{j}" type="box" pos="{pos[0]:f} {pos[1]:f} {pos[2]:f}" '
        f'size="{half[0]:f} {half[1]:f} {half[2]:f}" contype="1" conaffinity="1" rgba="0.7 0.5 0.3 1.0"/>'
        for (i, j), pos, half in (maze.wall_boxes() if maze is not None else [])
    )
    motors = "\n".join(f'    <motor joint="{j}" ctrlrange="-30.0 30.0" ctrllimited="true"/>'
                       for j in ("hip_4", "ankle_4", "hip_1", "ankle_1", "hip_2", "ankle_2", "hip_3", "ankle_3"))
    return f"""<mujoco model="ant">
  <compiler inertiafromgeom="true" angle="degree"/>
  <option timestep="{TIMESTEP}" integrator="RK4"/>
  <default>
    <joint limited="true" armature="1" damping="1"/>
    <geom condim="3" conaffinity="0" margin="0.01" friction="1 0.5 0.5" solref=".02 1" solimp=".8 .8 .01" rgba="0.8 0.6 0.4 1" density="5.0"/>
  </default>
  <worldbody>
    <geom name="floor" pos="0 0 0" size="40 40 40" type="plane" conaffinity="1" rgba="0.8 0.9 0.8 1" condim="3"/>
    <body name="torso" pos="0 0 {TORSO_HEIGHT}">
      <geom name="torso_geom" type="sphere" size="0.25" pos="0 0 0" rgba="0.3 0.9 0.5 1"/>
      <joint name="root" type="free" limited="false" pos="0 0 0" axis="0 0 1" margin="0.01" armature="0" damping="0"/>
{legs}
    </body>
{blocks}
  </worldbody>
  <actuator>
{motors}
  </actuator>
</mujoco>
"""


class AntMazeEnv(gym.Env):
    """One ant maze.

    maze: the map whose walls are built and whose goal sampler draws the goal (the test map for
    the registered envs; None: the ant alone on the open floor, without goals); goal_cells:
    override the sampler's cells (dataset generation, diverse); multi_start: D4RL's non_zero_reset; resample_goal: draw a new goal at every reset (v2) rather
    than once, at the first reset.
    """

    metadata = {"render_modes": []}

    def __init__(self, maze: MazeMap | None, goal_cells=None, multi_start: bool = False, resample_goal: bool = True):
        self.maze = maze
        self.goal_cells = list(goal_cells) if goal_cells is not None else None
        self.multi_start = multi_start
        self.resample_goal = resample_goal
        self.model = mujoco.MjModel.from_xml_string(ant_maze_mjcf(maze))
        self.data = mujoco.MjData(self.model)
        self.init_qpos = self.data.qpos.copy()  # qpos0: torso at (0, 0, 0.75), upright, joints 0
        self.init_qvel = self.data.qvel.copy()
        self.goal: np.ndarray | None = None
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(ACT_DIM,), dtype=np.float32)

    # --- state access -------------------------------------------------------------------
    def observation(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:15], self.data.qvel[:14]])

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    @property
    def xy(self) -> np.ndarray:
        return self.data.qpos[:2].copy()

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        return self.maze.sample_goal(rng, self.goal_cells)

    def reset_ant(self, rng: np.random.Generator) -> np.ndarray:
        """D4RL's AntEnv.reset_model after sim.reset(); returns the obs."""
        mujoco.mj_resetData(self.model, self.data)
        qpos = self.init_qpos + rng.uniform(-RESET_NOISE, RESET_NOISE, size=self.model.nq)
        qvel = self.init_qvel + rng.standard_normal(self.model.nv) * RESET_NOISE
        if self.multi_start:
            qpos[:2] = self.maze.sample_reset_location(rng)
        self.set_state(qpos, qvel)
        return self.observation()

    def physics_step(self, action: np.ndarray) -> np.ndarray:
        """Torques 30 a (a clipped to [-1, 1]), five 0.02 s RK4 steps; returns the obs."""
        self.data.ctrl[:] = TORQUE_LIMIT * np.clip(action, -1.0, 1.0)
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        return self.observation()

    def distance_to_goal(self) -> float:
        return float(np.linalg.norm(self.data.qpos[:2] - self.goal))

    # --- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self.goal is None or self.resample_goal:
            self.goal = self.sample_goal(self.np_random)
        obs = self.reset_ant(self.np_random)
        return obs, {"goal": self.goal.copy()}

    def step(self, action):
        obs = self.physics_step(np.asarray(action, dtype=np.float64))
        success = self.distance_to_goal() <= SUCCESS_RADIUS
        return obs, float(success), bool(success), False, {"goal": self.goal.copy(), "success": bool(success)}
