"""Evaluation: observations become concat(s_t, g_t) with g_t planned at every env step.

`IntentObservationWrapper(env, source)` (source: an intent source, or a manager.pt path) wraps a single gymnasium env (obs (obs_dim,)) or a
gymnasium vector env (obs (num_envs, obs_dim), e.g. tasks.make_vector_env, autoreset off); for a
vector env it returns a `VectorIntentObservationWrapper`, which asks the source for all envs'
intents in ONE batched `plan_intents` call per step. The intent part of the observation space is
[source.intent_low, source.intent_high] (Manager: unbounded; random ablation: [0, 1]).
`last_intents` holds the intents of the latest observation (e.g. to decode where they point).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector.utils import batch_space

from wrappers.sources import as_intent_source


def _intents_for(space: gym.Space, source):
    """(the intent source for observations of `space`: a manager.pt path is loaded for their size,
    `space` with the intent part appended)."""
    if not isinstance(space, Box) or len(space.shape) != 1:
        raise TypeError(f"intents can only be appended to flat Box observations, got {space}")
    source = as_intent_source(source, int(space.shape[0]), "plan_intents")
    d = source.intent_dim
    low = np.concatenate([space.low, np.full(d, source.intent_low, dtype=space.dtype)])
    high = np.concatenate([space.high, np.full(d, source.intent_high, dtype=space.dtype)])
    return source, Box(low=low, high=high, dtype=space.dtype)


def _append_intents(obs: np.ndarray, source, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(N, obs_dim) observations -> (N, obs_dim + d) with one batched plan, and the intents (N, d)."""
    intents = source.plan_intents(obs)
    return np.concatenate([obs.astype(dtype, copy=False), intents.astype(dtype)], axis=1), intents


def _reset_source(source) -> None:
    if hasattr(source, "reset"):
        source.reset()


class VectorIntentObservationWrapper(gym.vector.VectorObservationWrapper):
    """A vector env whose observations carry intents: one planner call for all envs per step."""

    def __init__(self, env: gym.vector.VectorEnv, source):
        super().__init__(env)
        self.source, self.single_observation_space = _intents_for(env.single_observation_space, source)
        self.observation_space = batch_space(self.single_observation_space, env.num_envs)
        self.last_intents: np.ndarray | None = None

    def reset(self, *, seed=None, options=None):
        _reset_source(self.source)
        return super().reset(seed=seed, options=options)

    def observations(self, observations: np.ndarray) -> np.ndarray:
        out, self.last_intents = _append_intents(np.asarray(observations), self.source,
                                                 self.single_observation_space.dtype)
        return out


class IntentObservationWrapper(gym.ObservationWrapper):
    """A single env whose observations carry intents; given a vector env, the vector version."""

    def __new__(cls, env, source):
        if isinstance(env, gym.vector.VectorEnv):
            return VectorIntentObservationWrapper(env, source)
        return super().__new__(cls)

    def __init__(self, env: gym.Env, source):
        super().__init__(env)
        self.source, self.observation_space = _intents_for(env.observation_space, source)
        self.last_intents: np.ndarray | None = None

    def reset(self, *, seed=None, options=None):
        _reset_source(self.source)
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        out, intents = _append_intents(np.asarray(observation)[None], self.source, self.observation_space.dtype)
        self.last_intents = intents[0]
        return out[0]
