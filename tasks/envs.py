"""Env constructors by D4RL name: one env with D4RL's time limit, or a batch of them."""
from __future__ import annotations

import gymnasium as gym
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import OrderEnforcing, TimeLimit

from tasks.registry import get_task


def make_env(name: str) -> gym.Env:
    """The task's gymnasium env with D4RL's TimeLimit (truncated=True at max_episode_steps); a step
    before the first reset is gymnasium's ResetNeeded error, as with gym.make."""
    spec = get_task(name)
    return OrderEnforcing(TimeLimit(spec.make_env(), max_episode_steps=spec.max_episode_steps))


def make_vector_env(name: str, num_envs: int) -> SyncVectorEnv:
    """`num_envs` copies stepped in lock-step, no auto-reset: an evaluator resets them itself."""
    get_task(name)  # fail early on an unknown name
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    return SyncVectorEnv([lambda: make_env(name) for _ in range(num_envs)],
                         autoreset_mode=AutoresetMode.DISABLED)
