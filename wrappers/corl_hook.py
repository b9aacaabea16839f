"""The plugin's two hooks for an UPSTREAM CORL checkout (corl_patches/*.patch call these).

Upstream CORL scripts know nothing of intents, so the settings come from environment variables
and the patches stay two marked lines per file (plus one import):

    IQL_TD_MPC_INTENT   none | manager | random          (default none: the hooks do nothing)
    IQL_TD_MPC_MANAGER  path of manager.pt               (required for intent=manager)
    IQL_TD_MPC_SEED     seed of the random intents       (default 0)
    IQL_TD_MPC_INTENT_DIM  size of random intents        (default 10, the Manager's latent size)
    IQL_TD_MPC_DEVICE   device of the Manager's planner  (default: cuda when available)

    dataset = plugin_augment(dataset, config.env)   # PLUGIN(intents)
    env = plugin_wrap_env(gym.make(config.env), config.env)   # PLUGIN(intents)

CORL runs on the legacy `gym` API (reset -> obs, step -> 4-tuple, env.seed, env.get_dataset);
`plugin_wrap_env` wraps such an env with a legacy-API wrapper and a gymnasium env with
`IntentObservationWrapper`. The intent source is built once per (env name, obs size) and shared
by both hooks, so the dataset and the evaluation see the same Manager.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from wrappers import augment, wrap_env
from wrappers.observation import _append_intents, _reset_source
from wrappers.sources import INTENT_CHOICES, make_intent_source

_SOURCES: dict[tuple[str, int], Any] = {}


def intent_setting() -> str:
    intent = os.environ.get("IQL_TD_MPC_INTENT", "none")
    if intent not in INTENT_CHOICES:
        raise ValueError(f"IQL_TD_MPC_INTENT={intent!r} is not one of {' | '.join(INTENT_CHOICES)}")
    return intent


def intents_for(env_name: str, obs_dim: int):
    """The intent source chosen by the environment variables (None for intent=none), cached."""
    intent = intent_setting()
    if intent == "none":
        return None
    key = (env_name, int(obs_dim))
    if key not in _SOURCES:
        manager = os.environ.get("IQL_TD_MPC_MANAGER")
        if intent == "manager" and not manager:
            raise ValueError("IQL_TD_MPC_INTENT=manager needs IQL_TD_MPC_MANAGER=/path/to/manager.pt "
                             "(train one with `make manager ENV=<env>`)")
        _SOURCES[key] = make_intent_source(intent, manager, env_name, int(obs_dim),
                                           intent_dim=int(os.environ.get("IQL_TD_MPC_INTENT_DIM", "10")),
                                           device=os.environ.get("IQL_TD_MPC_DEVICE"),
                                           seed=int(os.environ.get("IQL_TD_MPC_SEED", "0")))
    return _SOURCES[key]


def plugin_augment(dataset: dict[str, np.ndarray], env_name: str) -> dict[str, np.ndarray]:
    """CORL's dataset line: appends intents to observations (and next_observations) when enabled."""
    return augment(dataset, intents_for(env_name, dataset["observations"].shape[1]))


def plugin_wrap_env(env, env_name: str):
    """CORL's env line: observations become concat(s_t, g_t) when enabled (legacy gym or gymnasium)."""
    source = intents_for(env_name, env.observation_space.shape[0])
    if source is None:
        return env
    try:
        import gymnasium

        if isinstance(env, (gymnasium.Env, gymnasium.vector.VectorEnv)):
            return wrap_env(env, source)
    except ImportError:  # pragma: no cover - gymnasium is one of our requirements
        pass
    return legacy_intent_wrapper(env, source)


def legacy_intent_wrapper(env, source):
    """Wrap a legacy-gym env (CORL's gym 0.23 + d4rl): `env.get_dataset`, `env.seed`,
    `env.get_normalized_score` still reach the inner env through gym's attribute forwarding."""
    import gym  # the legacy package CORL installs; only needed here

    class LegacyIntentObservationWrapper(gym.ObservationWrapper):
        def __init__(self, inner):
            super().__init__(inner)
            space = inner.observation_space
            d = source.intent_dim
            self.observation_space = gym.spaces.Box(
                low=np.concatenate([space.low, np.full(d, source.intent_low, dtype=space.dtype)]),
                high=np.concatenate([space.high, np.full(d, source.intent_high, dtype=space.dtype)]),
                dtype=space.dtype)
            self.source = source

        @property
        def _max_episode_steps(self):  # d4rl.qlearning_dataset reads it; gym does not forward private names
            return getattr(self.env, "_max_episode_steps", None)

        def reset(self, **kwargs):
            _reset_source(self.source)
            return super().reset(**kwargs)

        def observation(self, observation):
            out, _ = _append_intents(np.asarray(observation)[None], self.source, self.observation_space.dtype)
            return out[0]

    return LegacyIntentObservationWrapper(env)
