"""Dataset augmentation: observations s_t become concat(s_t, g_t) (paper section 5.2).

g_t = source.pair_intents(s_t, s_f) with s_f the state k rows on in the SAME episode, clamped to
the episode's last state. Every form is turned into one "state chain" per episode, the intents
are computed for all chain states in chunks of `batch_size` rows on the source's device, and each
row then picks its own state's intent (and, for next_observations, the next state's). A chunk may
hold rows of several episodes: a row's intent depends only on its own pair (s_t, s_f), and s_f is
always taken inside the row's episode, so episodes never mix.

Forms (see augment_dataset):
  - raw D4RL dict (observations, actions, rewards, terminals, timeouts): episode ends as in
    manager.data.episode_last_state (a timeout row's last state is itself, a terminal row's last
    state is the row after it); only `observations` is augmented;
  - qlearning dict (with next_observations): an episode ends at row t where terminals[t] is set,
    where next_observations[t] != observations[t + 1] (exact), or at the last row. Its chain is
    observations[s..e] then next_observations[e]; next_observations[t] gets the intent of the next
    chain state, i.e. exactly the vector of observations[t + 1] inside an episode, and at the
    episode's last row the intent of next_observations[e] (its future clamped to itself);
  - list of trajectory dicts (tasks.trajectories): each is one episode, future row min(t + k, len - 1).
    A trajectory that carries next_observations is treated like a one-episode qlearning dict.

The random source draws one vector per chain state, so the same alignment holds for it:
next_observations[t] and observations[t + 1] of one episode share one draw.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from manager.data import episode_last_state
from tasks.datasets import DatasetError, episode_timeouts
from wrappers.sources import as_intent_source


def _obs_size(observations) -> int:
    return int(np.shape(observations)[-1])


def _future_positions(pos: np.ndarray, last: np.ndarray, k: int | None) -> np.ndarray:
    """min(pos + k, last) for every chain position; a source with k None pairs a state with itself."""
    return pos.copy() if k is None else np.minimum(pos + int(k), last)


def chain_intents(states: np.ndarray, future: np.ndarray, source, batch_size: int = 65536) -> np.ndarray:
    """(M, d) float32: row i is source.pair_intents(states[i], states[future[i]]), in chunks."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = np.empty((len(states), source.intent_dim), dtype=np.float32)
    for start in range(0, len(states), batch_size):
        stop = min(start + batch_size, len(states))
        out[start:stop] = source.pair_intents(states[start:stop], states[future[start:stop]])
    return out


def _concat(obs: np.ndarray, intents: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(obs, dtype=np.float32), intents], axis=1)


def _terminals(dataset: dict[str, Any], n: int) -> np.ndarray:
    """(n,) bool `terminals`, or a DatasetError naming the layouts augment_dataset reads."""
    if "terminals" not in dataset:
        raise DatasetError(f"the dataset has no 'terminals' (its keys: {', '.join(sorted(dataset))}); augment_dataset "
                           "finds episode ends in D4RL's layouts: observations, terminals, timeouts (raw) or "
                           "observations, next_observations, terminals (qlearning), or a list of trajectory dicts")
    return np.asarray(dataset["terminals"]).astype(bool).reshape(n)


def _augment_raw(dataset: dict[str, Any], source, batch_size: int, max_episode_steps: int | None) -> dict:
    obs = np.asarray(dataset["observations"], dtype=np.float32)
    n = len(obs)
    terminals = _terminals(dataset, n)
    timeouts = episode_timeouts(dataset, max_episode_steps).reshape(n)
    last = episode_last_state(terminals, timeouts)
    future = _future_positions(np.arange(n), last, source.k)
    out = dict(dataset)
    out["observations"] = _concat(obs, chain_intents(obs, future, source, batch_size))
    return out


def transition_episode_ends(dataset: dict[str, Any]) -> np.ndarray:
    """(n,) bool: row t is the last transition of its episode in a qlearning dict."""
    obs, next_obs = dataset["observations"], dataset["next_observations"]
    n = len(obs)
    ends = _terminals(dataset, n).copy()
    if n:
        ends[-1] = True
        ends[:-1] |= np.any(np.asarray(next_obs[:-1]) != np.asarray(obs[1:]), axis=tuple(range(1, np.ndim(obs))))
    return ends


def _augment_transitions(dataset: dict[str, Any], source, batch_size: int, ends: np.ndarray | None = None) -> dict:
    obs = np.asarray(dataset["observations"], dtype=np.float32)
    next_obs = np.asarray(dataset["next_observations"], dtype=np.float32)
    n = len(obs)
    ends = transition_episode_ends(dataset) if ends is None else ends
    episode = np.cumsum(ends) - ends  # episode index of each row
    pos = np.arange(n) + episode       # row t's place in the chain (one extra state per finished episode)
    end_rows = np.flatnonzero(ends)
    end_pos = end_rows + np.arange(len(end_rows)) + 1  # chain place of each episode's next_observations[e]
    states = np.empty((n + len(end_rows),) + obs.shape[1:], dtype=np.float32)
    states[pos] = obs
    states[end_pos] = next_obs[end_rows]
    last = np.empty(len(states), dtype=np.int64)
    last[pos] = end_pos[episode]
    last[end_pos] = end_pos
    future = _future_positions(np.arange(len(states)), last, source.k)
    intents = chain_intents(states, future, source, batch_size)
    out = dict(dataset)
    out["observations"] = _concat(obs, intents[pos])
    out["next_observations"] = _concat(next_obs, intents[pos + 1])
    return out


def _augment_trajectories(trajectories: list[dict[str, Any]], source, batch_size: int) -> list[dict]:
    plain = [i for i, tr in enumerate(trajectories) if "next_observations" not in tr]
    out: list[dict | None] = [None] * len(trajectories)
    for i, tr in enumerate(trajectories):
        if "next_observations" in tr:
            n = len(tr["observations"])
            out[i] = _augment_transitions(tr, source, batch_size, ends=np.arange(n) == n - 1)
    if plain:  # all plain trajectories in one chain, each with its own end, so chunks stay large
        obs = [np.asarray(trajectories[i]["observations"], dtype=np.float32) for i in plain]
        lengths = np.array([len(o) for o in obs], dtype=np.int64)
        starts = np.cumsum(lengths) - lengths
        last = np.repeat(starts + lengths - 1, lengths)
        states = np.concatenate(obs, axis=0)
        future = _future_positions(np.arange(len(states)), last, source.k)
        intents = chain_intents(states, future, source, batch_size)
        for i, o, s, length in zip(plain, obs, starts, lengths):
            tr = dict(trajectories[i])
            tr["observations"] = _concat(o, intents[s:s + length])
            out[i] = tr
    return out  # type: ignore[return-value]


def augment_dataset(dataset, source, batch_size: int = 65536, *, max_episode_steps: int | None = None):
    """A new dataset whose observations (and next_observations) carry the intents g_t appended.

    `dataset`: a raw D4RL dict, a qlearning dict (has next_observations), or a list of trajectory
    dicts; `source`: an intent source (wrappers.sources), or a manager.pt path. Augmented arrays are new float32 arrays; every other entry is shared with the input,
    which is never modified. `max_episode_steps` is only needed for a raw dict without `timeouts`.
    """
    if isinstance(dataset, (list, tuple)):
        source = as_intent_source(source, _obs_size(dataset[0]["observations"]) if dataset else None, "pair_intents")
        return _augment_trajectories(list(dataset), source, batch_size)
    if not isinstance(dataset, dict) or "observations" not in dataset:
        raise TypeError("augment_dataset expects a dict with 'observations' or a list of trajectory dicts, "
                        f"got {type(dataset).__name__}")
    source = as_intent_source(source, _obs_size(dataset["observations"]), "pair_intents")
    if "next_observations" in dataset:
        return _augment_transitions(dataset, source, batch_size)
    return _augment_raw(dataset, source, batch_size, max_episode_steps)
