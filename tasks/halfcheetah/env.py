"""HalfCheetah on the official `mujoco` bindings, numerically gymnasium's HalfCheetah-v5 (and v4).

D4RL's halfcheetah-*-v2 data came from gym's HalfCheetah (mujoco-py, MuJoCo 2.x). gymnasium's
v4/v5 are the maintained equivalent on `mujoco`; they are the same model file and the same step,
reward and reset, which this class reproduces directly:
- model: gymnasium's `half_cheetah.xml` (read from the installed gymnasium package: the same file
  gym shipped for v2/v3), timestep 0.01, frame_skip 5 -> dt 0.05;
- obs (17,) float64 = qpos[1:] (8: rootz, rooty, 6 joint angles) + qvel (9); the x position is
  excluded (info["x_position"] has it);
- reward = (x_after - x_before) / dt - 0.1 * sum(action**2) (the unclipped action in the cost;
  MuJoCo clamps ctrl to [-1, 1] itself); never terminates; TimeLimit 1000 (added by tasks.make_env);
- reset: qpos = init_qpos + U(-0.1, 0.1)^9, then qvel = init_qvel + 0.1 N(0, 1)^9, drawn in that
  order from the env's np_random, so `reset(seed=s)` starts where gymnasium's HalfCheetah-v5 does.

Why not `gymnasium.make("HalfCheetah-v5")`: gymnasium's mujoco package imports its renderer,
which needs `imageio` (gymnasium[mujoco]); this project pins gymnasium without that extra and
needs no rendering. tests/test_halfcheetah.py compares this class with gymnasium's step by step
whenever gymnasium's class can be imported. Differences from gymnasium's class: no rendering,
and `mj_rnePostConstraint` is not called after a step (it fills only cacc/cfrc_*, which neither
the observation, the reward nor the next step reads).
"""
from __future__ import annotations

import functools
import importlib.util
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

FRAME_SKIP = 5
FORWARD_REWARD_WEIGHT = 1.0
CTRL_COST_WEIGHT = 0.1
RESET_NOISE_SCALE = 0.1
OBS_DIM, ACT_DIM = 17, 6


def gymnasium_asset(name: str = "half_cheetah.xml") -> Path:
    """Path of a MuJoCo model file shipped inside the installed gymnasium (without importing
    gymnasium.envs.mujoco, which needs imageio)."""
    spec = importlib.util.find_spec("gymnasium")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("gymnasium is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "envs" / "mujoco" / "assets" / name
    if not path.is_file():
        raise RuntimeError(f"{path} not found: this gymnasium install has no MuJoCo assets")
    return path


@functools.lru_cache(maxsize=None)
def cheetah_model() -> mujoco.MjModel:
    """The compiled model, loaded once per process and shared read-only by every env.

    MuJoCo 3.2+ warns that the file's `settotalmass` is deprecated (it still applies it), on stderr
    and into MUJOCO_LOG.TXT in the working folder; that one warning is dropped, any other is passed
    on as a Python warning."""
    messages: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)
    try:
        model = mujoco.MjModel.from_xml_path(str(gymnasium_asset()))
    finally:
        mujoco.set_mju_user_warning(previous)
    for message in messages:
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)
    return model


class HalfCheetahEnv(gym.Env):
    """gymnasium API; obs float64 (17,), actions float32 box [-1, 1]^6."""

    metadata = {"render_modes": []}

    def __init__(self):
        self.model = cheetah_model()
        self.data = mujoco.MjData(self.model)
        self.init_qpos = self.data.qpos.ravel().copy()
        self.init_qvel = self.data.qvel.ravel().copy()
        self.dt = self.model.opt.timestep * FRAME_SKIP
        low, high = self.model.actuator_ctrlrange.copy().astype(np.float32).T
        self.action_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(OBS_DIM,), dtype=np.float64)

    def observation(self) -> np.ndarray:
        return np.concatenate([self.data.qpos.flat[1:], self.data.qvel.flat])

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        mujoco.mj_forward(self.model, self.data)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        qpos = self.init_qpos + self.np_random.uniform(-RESET_NOISE_SCALE, RESET_NOISE_SCALE, size=self.model.nq)
        qvel = self.init_qvel + RESET_NOISE_SCALE * self.np_random.standard_normal(self.model.nv)
        self.set_state(qpos, qvel)
        return self.observation(), {"x_position": self.data.qpos[0]}

    def step(self, action):
        x_before = self.data.qpos[0]
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=FRAME_SKIP)
        x_after = self.data.qpos[0]
        x_velocity = (x_after - x_before) / self.dt
        forward = FORWARD_REWARD_WEIGHT * x_velocity
        ctrl_cost = CTRL_COST_WEIGHT * np.sum(np.square(action))  # float32 for float32 actions, as gymnasium
        info = {"x_position": x_after, "x_velocity": x_velocity, "reward_forward": forward,
                "reward_ctrl": -ctrl_cost}
        return self.observation(), forward - ctrl_cost, False, False, info
