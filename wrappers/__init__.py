"""Intents for offline RL workers (paper section 5.2): s_t -> concat(s_t, g_t) in the dataset and
at evaluation. See wrappers/README.md.

    from wrappers import make_intent_source, augment, wrap_env
    source = make_intent_source(cfg.intent, manager_path, env, obs_dim)   # None for "none"
    dataset = augment(dataset, source)     # PLUGIN(intents)
    eval_env = wrap_env(eval_env, source)  # PLUGIN(intents)
"""
from wrappers.augment import augment_dataset
from wrappers.observation import IntentObservationWrapper, VectorIntentObservationWrapper
from wrappers.sources import (INTENT_CHOICES, IntentSource, ManagerIntentSource, RandomIntentSource,
                              as_intent_source, make_intent_source)


def augment(dataset, source):
    """The worker's dataset line: `dataset` itself for source None, else augment_dataset(dataset, source)."""
    return dataset if source is None else augment_dataset(dataset, source)


def wrap_env(env, source):
    """The worker's eval-env line: `env` itself for source None, else IntentObservationWrapper(env, source)."""
    return env if source is None else IntentObservationWrapper(env, source)


__all__ = [
    "INTENT_CHOICES", "IntentSource", "ManagerIntentSource", "RandomIntentSource", "as_intent_source",
    "make_intent_source",
    "augment_dataset", "IntentObservationWrapper", "VectorIntentObservationWrapper", "augment", "wrap_env",
]
