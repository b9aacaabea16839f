"""Batched policy evaluation and D4RL's normalised score.

A batch policy maps observations (num_envs, obs_dim) to actions (num_envs, act_dim) and may
have `reset(episode_ids)`, called with the ids of the episodes that start in each env slot,
`reset_info(info)`, called right after it with the vector env's reset info (e.g. antmaze goals), and
`observe(rewards)`, called with the (num_envs,) rewards after every env step (e.g. a Decision
Transformer lowers its returns-to-go with them).
Episode e always starts from reset seed (seed, e), so returns do not depend on num_envs.
"""
from __future__ import annotations

from typing import Callable, Protocol

import gymnasium as gym
import numpy as np

from common.progress import progress_bar
from common.seeding import derived_seed
from tasks.envs import make_vector_env
from tasks.registry import get_task


class BatchPolicy(Protocol):
    def __call__(self, obs: np.ndarray) -> np.ndarray: ...


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of episode `episode` of an evaluation seeded `seed`."""
    return derived_seed(seed, episode)


def get_normalized_score(name: str, returns):
    """D4RL's normalised score, 100 * (return - REF_MIN) / (REF_MAX - REF_MIN).

    NOTE the 0-100 scale (d4rl's env.get_normalized_score returns the 0-1 fraction)."""
    return get_task(name).normalized_score(returns)


def check_finite_actions(actions: np.ndarray, alive: np.ndarray, ids: np.ndarray, step: int, name: str) -> None:
    """MuJoCo would zero a NaN control with a warning and the evaluation would go on to a meaningless
    score: stop instead, naming the episodes and the step."""
    finite = np.isfinite(np.asarray(actions, dtype=np.float64)).all(axis=-1)  # (num_envs,)
    if not finite[alive].all():
        bad = ids[alive & ~finite]
        raise ValueError(f"the policy returned non-finite actions (NaN or Inf) in episode(s) {bad.tolist()[:5]} at "
                         f"step {step} of an evaluation on {name}: its weights or its inputs hold NaN/Inf; check "
                         "the checkpoint's weights and observation statistics (or the intents appended to them)")


def evaluate_policy(name: str, policy: BatchPolicy, episodes: int, seed: int = 0,
                    num_envs: int | None = None,
                    wrap: Callable[[gym.vector.VectorEnv], gym.vector.VectorEnv] | None = None,
                    show_progress: bool = False, envs: gym.vector.VectorEnv | None = None) -> np.ndarray:
    """Returns (episodes,) undiscounted returns, running `num_envs` episodes at once.

    `wrap` may wrap the vector env (e.g. to append intents to observations). `envs` passes a
    ready vector env of this task instead (made by make_vector_env, autoreset off; it is not
    closed). An episode ends at its first terminated or truncated step; later rewards of that
    slot are ignored.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    own_envs = envs is None
    if own_envs:
        num_envs = min(episodes, num_envs or episodes)
        envs = make_vector_env(name, num_envs)
        if wrap is not None:
            envs = wrap(envs)
    else:
        num_envs = envs.num_envs
    returns = np.zeros(episodes)
    rounds = -(-episodes // num_envs)
    with progress_bar(total=episodes, desc=f"evaluate {name}", enabled=show_progress, unit="ep") as bar:
        for r in range(rounds):
            ids = np.arange(r * num_envs, (r + 1) * num_envs)  # the last round may run extra episodes
            obs, info = envs.reset(seed=[episode_seed(seed, int(e)) for e in ids])
            if hasattr(policy, "reset"):
                policy.reset(ids)
            if hasattr(policy, "reset_info"):  # scripted goal-reaching policies read the goals
                policy.reset_info(info)
            total = np.zeros(num_envs)
            alive = np.ones(num_envs, bool)
            step = 0
            while alive.any():
                actions = policy(obs)
                check_finite_actions(actions, alive, ids, step, name)
                obs, reward, terminated, truncated, _ = envs.step(actions)
                step += 1
                if hasattr(policy, "observe"):
                    policy.observe(reward)
                total += np.where(alive, reward, 0.0)
                alive &= ~(terminated | truncated)
                if alive.any() and (terminated | truncated).any():
                    # a vector env without auto-reset refuses to step a finished env: restart the
                    # finished ones (their further steps are ignored) until the round ends
                    obs, _ = envs.reset(options={"reset_mask": terminated | truncated})
            valid = ids < episodes
            returns[ids[valid]] = total[valid]
            bar.update(int(valid.sum()))
    if own_envs:
        envs.close()
    return returns


class RandomPolicy:
    """Uniform actions in the action box (D4RL's REF_MIN policy), seeded per episode."""

    def __init__(self, action_space: gym.spaces.Box, seed: int = 0):
        self.low, self.high = action_space.low, action_space.high
        self.seed = seed
        self.rngs: list[np.random.Generator] = []

    def reset(self, episode_ids: np.ndarray) -> None:
        self.rngs = [np.random.default_rng([self.seed, int(e), 1]) for e in episode_ids]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.stack([rng.uniform(self.low, self.high) for rng in self.rngs]).astype(np.float32)


def make_policy(name: str, policy: str, seed: int = 0, d4rl_protocol: bool = False) -> BatchPolicy:
    """'random' for every task, or one of the task's scripted policies (maze2d: 'controller')."""
    spec = get_task(name)
    if policy == "random":
        return RandomPolicy(spec.make_env().action_space, seed)
    if policy not in spec.scripted_policies:
        known = ", ".join(["random", *spec.scripted_policies])
        raise ValueError(f"unknown policy {policy!r} for {name}; choose one of: {known}")
    return spec.scripted_policies[policy](spec, seed, d4rl_protocol)
