"""wrappers/: intent sources, dataset augmentation (three forms), the observation wrapper."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import tasks
from manager.checkpoint import CheckpointError
from wrappers import (INTENT_CHOICES, IntentObservationWrapper, ManagerIntentSource, RandomIntentSource,
                      VectorIntentObservationWrapper, augment, augment_dataset, make_intent_source, wrap_env)

ENV = "maze2d-umaze-v1"


# --- fixtures and helpers ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def manager_path(tmp_path_factory, umaze_small):
    """A smoke-sized Manager for maze2d-umaze, a few updates on the small dataset, exported."""
    from manager.agent import Agent
    from manager.checkpoint import export_manager
    from manager.config import apply_profile, make_config, resolve_for_env
    from manager.data import SequenceSampler

    cfg = resolve_for_env(apply_profile(make_config("manager"), "smoke"), ENV)
    agent = Agent(4, 2, cfg, "cpu", 0)
    sampler = SequenceSampler(umaze_small[1], cfg.horizon, cfg.k, cfg.reward_scale, seed=0)
    for _ in range(3):
        agent.update(sampler.sample(cfg.batch_size))
    path = tmp_path_factory.mktemp("manager") / "manager.pt"
    export_manager(path, env=ENV, obs_dim=4, act_dim=2, cfg=cfg, obs_mean=torch.as_tensor(sampler.obs_mean),
                   obs_std=torch.as_tensor(sampler.obs_std), model_state=agent.model.state_dict(),
                   code_version="test")
    return path


@pytest.fixture(scope="module")
def source(manager_path):
    return make_intent_source("manager", manager_path, ENV, 4, device="cpu")


@pytest.fixture(scope="module")
def flagged(umaze_small):
    """The first 700 rows of the small dataset (its own timeouts) plus three terminals."""
    raw = {k: v[:700].copy() for k, v in umaze_small[1].items()}
    raw["terminals"][[100, 300, 460]] = True  # 460 is followed by timeouts at 461 and 462
    return raw


def raw_last_state(terminals, timeouts):
    """Independent re-statement of the raw rule: walk to the episode's flagged row."""
    n, last = len(terminals), np.empty(len(terminals), int)
    for t in range(n):
        e = t
        while e < n - 1 and not (terminals[e] or timeouts[e]):
            e += 1
        last[t] = e + 1 if terminals[e] and not timeouts[e] and e + 1 < n else e
    return last


class FutureSource:
    """Fake source whose intent IS the paired future state's first two numbers (exact checks)."""
    intent_dim, k, intent_low, intent_high = 2, 3, -np.inf, np.inf

    def __init__(self):
        self.batches = []

    def pair_intents(self, obs_t, obs_future):
        self.batches.append(len(obs_t))
        return np.asarray(obs_future, dtype=np.float32)[:, :2].copy()


class Spy:
    """Counts calls to a real source."""

    def __init__(self, inner):
        self.inner, self.plan_calls, self.resets = inner, [], 0
        self.intent_dim, self.k = inner.intent_dim, inner.k
        self.intent_low, self.intent_high = inner.intent_low, inner.intent_high

    def plan_intents(self, obs):
        self.plan_calls.append(np.array(obs))
        return self.inner.plan_intents(obs)

    def pair_intents(self, obs_t, obs_future):
        return self.inner.pair_intents(obs_t, obs_future)

    def reset(self):
        self.resets += 1
        self.inner.reset()


def intents_of(arr, obs_dim=4):
    return arr[:, obs_dim:]


# --- the intent sources ------------------------------------------------------------------------
def test_make_intent_source_choices(manager_path):
    assert INTENT_CHOICES == ("none", "manager", "random")
    assert make_intent_source("none", None, ENV, 4) is None
    src = make_intent_source("manager", manager_path, ENV, 4, device="cpu")
    assert isinstance(src, ManagerIntentSource) and src.k == 8 and src.intent_dim == 10 and src.obs_dim == 4
    rnd = make_intent_source("random", None, ENV, 4, seed=3)
    assert isinstance(rnd, RandomIntentSource) and rnd.intent_dim == 10
    assert make_intent_source("random", None, ENV, 4, intent_dim=7).intent_dim == 7
    with pytest.raises(ValueError, match=r"none\|manager\|random"):
        make_intent_source("managr", manager_path, ENV, 4)
    with pytest.raises(ValueError, match=f"make manager ENV={ENV}"):
        make_intent_source("manager", None, ENV, 4)


def test_mismatched_or_missing_manager_is_refused(manager_path, tmp_path):
    with pytest.raises(CheckpointError, match="maze2d-large-v1"):
        make_intent_source("manager", manager_path, "maze2d-large-v1", 4, device="cpu")
    with pytest.raises(CheckpointError, match="29"):
        make_intent_source("manager", manager_path, ENV, 29, device="cpu")
    with pytest.raises(CheckpointError, match="make manager"):
        make_intent_source("manager", tmp_path / "absent.pt", ENV, 4, device="cpu")


def test_manager_source_returns_float32_numpy(source, flagged):
    obs = flagged["observations"][:5]
    g = source.pair_intents(obs, obs[::-1])  # a reversed (negative-stride) view is fine
    assert isinstance(g, np.ndarray) and g.dtype == np.float32 and g.shape == (5, 10)
    np.testing.assert_allclose(g, source.manager.pair_intents(obs, obs[::-1].copy()).numpy(), atol=1e-6)
    source.reseed(5)
    p1 = source.plan_intents(obs)
    source.reseed(5)
    np.testing.assert_array_equal(p1, source.plan_intents(obs))


# --- augmentation with the real Manager ------------------------------------------------------------
def test_raw_dataset_alignment(source, flagged):
    raw = flagged
    before = {k: v.copy() for k, v in raw.items()}
    out = augment_dataset(raw, source, batch_size=37)
    last = raw_last_state(raw["terminals"], raw["timeouts"])
    future = np.minimum(np.arange(len(last)) + source.k, last)
    assert (future < np.arange(len(last)) + source.k).sum() > 50  # rows within k of an end are covered
    assert last[100] == 101 and last[461] == 461 and future[95] == 101  # terminal and one-row episodes
    obs = raw["observations"]
    expected = source.pair_intents(obs, obs[future])
    assert out["observations"].shape == (700, 14) and out["observations"].dtype == np.float32
    np.testing.assert_array_equal(out["observations"][:, :4], obs)
    np.testing.assert_allclose(intents_of(out["observations"]), expected, atol=1e-5, rtol=1e-5)
    assert "next_observations" not in out and out is not raw
    assert out["actions"] is raw["actions"]
    for k, v in before.items():  # the input is untouched
        np.testing.assert_array_equal(raw[k], v)


def test_qlearning_dataset_alignment(source, flagged):
    raw = flagged
    q = tasks.qlearning_dataset(raw)
    out = augment_dataset(q, source, batch_size=50)
    obs, nxt = q["observations"], q["next_observations"]
    n = len(obs)
    g, g_next = intents_of(out["observations"]), intents_of(out["next_observations"])
    # independent walk over the state chain of every row's episode
    ends = [t for t in range(n) if q["terminals"][t] or t == n - 1 or not np.array_equal(nxt[t], obs[t + 1])]
    start = 0
    futures = []
    for e in ends:
        chain = np.concatenate([obs[start:e + 1], nxt[e:e + 1]])
        for i in range(e + 1 - start):
            futures.append(chain[min(i + source.k, len(chain) - 1)])
        np.testing.assert_allclose(g_next[e], source.pair_intents(nxt[e:e + 1], nxt[e:e + 1])[0], atol=1e-5)
        np.testing.assert_array_equal(g_next[start:e], g[start + 1:e + 1])  # same state, same vector
        start = e + 1
    np.testing.assert_allclose(g, source.pair_intents(obs, np.stack(futures)), atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(out["next_observations"][:, :4], nxt)
    assert out["next_observations"].dtype == np.float32 and out["terminals"] is q["terminals"]


def test_qlearning_matches_raw_where_episodes_agree(source, flagged):
    """qlearning_dataset keeps the non-timeout rows; where its exact-comparison episode split agrees
    with the raw flags, those rows get the raw form's intents. (maze2d's generated data repeats the
    state after a timeout, so the qlearning view sees one continuous chain there: make them differ.)"""
    raw = {k: v.copy() for k, v in flagged.items()}
    for e in np.flatnonzero(raw["timeouts"][:-1]):
        raw["observations"][e + 1] += 1e-3
    q = tasks.qlearning_dataset(raw)
    keep = np.flatnonzero(~raw["timeouts"][:-1])
    g_q = intents_of(augment_dataset(q, source)["observations"])
    g_raw = intents_of(augment_dataset(raw, source)["observations"])
    np.testing.assert_allclose(g_q, g_raw[keep], atol=1e-5, rtol=1e-5)


def test_trajectory_list_alignment(source, flagged):
    trajs = tasks.trajectories(flagged)
    out = augment_dataset(trajs, source, batch_size=64)
    assert isinstance(out, list) and len(out) == len(trajs) and out is not trajs
    assert any(len(tr["observations"]) < source.k for tr in trajs)
    for tr, tr_out in zip(trajs, out):
        o = tr["observations"]
        fut = np.minimum(np.arange(len(o)) + source.k, len(o) - 1)
        assert tr_out["observations"].shape == (len(o), 14) and tr["observations"].shape == (len(o), 4)
        np.testing.assert_allclose(intents_of(tr_out["observations"]), source.pair_intents(o, o[fut]), atol=1e-5)
        assert set(tr_out) == set(tr) and tr_out["rewards"] is tr["rewards"]


# --- exact alignment and episode separation on toy datasets ------------------------------------
def test_raw_toy_never_mixes_episodes():
    n = 20
    obs = np.stack([np.zeros(n), np.arange(n), np.ones(n)], 1).astype(np.float32)
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    timeouts[6], terminals[12] = True, True  # episodes 0..6 | 7..12 (+ successor 13) | 13..19
    src = FutureSource()
    out = augment_dataset({"observations": obs, "actions": np.zeros((n, 1)), "rewards": np.zeros(n),
                           "terminals": terminals, "timeouts": timeouts}, src, batch_size=4)
    expected = [3, 4, 5, 6, 6, 6, 6, 10, 11, 12, 13, 13, 13, 16, 17, 18, 19, 19, 19, 19]
    np.testing.assert_array_equal(out["observations"][:, 4], expected)
    assert max(src.batches) == 4


def test_qlearning_toy_never_mixes_episodes():
    def episode(ep, length, last_next=None):
        o = np.array([[ep, i, 0.5] for i in range(length)], np.float32)
        nx = np.array([[ep, i + 1, 0.5] for i in range(length)], np.float32)
        if last_next is not None:
            nx[-1] = last_next
        return o, nx
    a, b, c = episode(0, 5), episode(1, 4, last_next=[2, 0, 0.5]), episode(2, 6)
    # A ends because next_obs != the next row; B ends on a terminal although its next_obs equals C's start
    obs = np.concatenate([a[0], b[0], c[0]])
    nxt = np.concatenate([a[1], b[1], c[1]])
    terminals = np.zeros(15, bool)
    terminals[8] = True
    q = {"observations": obs, "actions": np.zeros((15, 1)), "next_observations": nxt,
         "rewards": np.zeros(15), "terminals": terminals}
    out = augment_dataset(q, FutureSource(), batch_size=2)
    g, g_next = out["observations"][:, 3:], out["next_observations"][:, 3:]
    exp = np.array([[0, 3], [0, 4], [0, 5], [0, 5], [0, 5],
                    [1, 3], [2, 0], [2, 0], [2, 0],
                    [2, 3], [2, 4], [2, 5], [2, 6], [2, 6], [2, 6]])
    exp_next = np.array([[0, 4], [0, 5], [0, 5], [0, 5], [0, 5],
                         [2, 0], [2, 0], [2, 0], [2, 0],
                         [2, 4], [2, 5], [2, 6], [2, 6], [2, 6], [2, 6]])
    np.testing.assert_array_equal(g, exp)
    np.testing.assert_array_equal(g_next, exp_next)
    assert q["observations"].shape == (15, 3)  # input untouched


def test_trajectory_toy_never_mixes_episodes():
    trajs = [{"observations": np.array([[0, i] for i in range(5)], np.float32), "rewards": np.zeros(5)},
             {"observations": np.array([[1, i] for i in range(2)], np.float32), "rewards": np.zeros(2)},
             {"observations": np.zeros((0, 2), np.float32), "rewards": np.zeros(0)}]
    out = augment_dataset(trajs, FutureSource(), batch_size=3)
    np.testing.assert_array_equal(out[0]["observations"][:, 2:], [[0, 3], [0, 4], [0, 4], [0, 4], [0, 4]])
    np.testing.assert_array_equal(out[1]["observations"][:, 2:], [[1, 1], [1, 1]])
    assert out[2]["observations"].shape == (0, 4)
    # a trajectory carrying next_observations: its chain ends with the last next_observations
    o = np.array([[3, i] for i in range(4)], np.float32)
    tr = {"observations": o, "next_observations": o + [0, 1]}
    out = augment_dataset([tr], FutureSource())[0]
    np.testing.assert_array_equal(out["observations"][:, 2:], [[3, 3], [3, 4], [3, 4], [3, 4]])
    np.testing.assert_array_equal(out["next_observations"][:, 2:], [[3, 4], [3, 4], [3, 4], [3, 4]])


# --- the random ablation -----------------------------------------------------------------------
def test_random_intents_shapes_range_seeding(flagged):
    q = tasks.qlearning_dataset(flagged)
    out = augment_dataset(q, RandomIntentSource(10, seed=1), batch_size=128)
    g, g_next = intents_of(out["observations"]), intents_of(out["next_observations"])
    assert g.shape == (len(q["observations"]), 10) and g.dtype == np.float32
    assert g.min() >= 0 and g.max() < 1 and abs(g.mean() - 0.5) < 0.02
    assert len(np.unique(g, axis=0)) == len(g)  # an independent draw for every row
    same = augment_dataset(q, RandomIntentSource(10, seed=1), batch_size=7)
    np.testing.assert_array_equal(same["observations"], out["observations"])  # seeded, chunk-independent
    other = augment_dataset(q, RandomIntentSource(10, seed=2))
    assert not np.array_equal(intents_of(other["observations"]), g)
    # next_observations[t] shares the draw of observations[t + 1] inside an episode, not across one
    inside = np.all(q["next_observations"][:-1] == q["observations"][1:], axis=1) & ~q["terminals"][:-1]
    assert inside.sum() > 500 and (~inside).sum() >= 3  # the three terminals
    np.testing.assert_array_equal(g_next[:-1][inside], g[1:][inside])
    assert not np.any(np.all(g_next[:-1][~inside] == g[1:][~inside], axis=1))
    raw_out = augment(flagged, RandomIntentSource(4, seed=0))
    assert raw_out["observations"].shape == (700, 8)


def test_random_eval_draws_are_fresh_every_step():
    src = RandomIntentSource(6, seed=0)
    obs = np.zeros((3, 4))
    a, b = src.plan_intents(obs), src.plan_intents(obs)
    assert a.shape == (3, 6) and not np.array_equal(a, b) and len(np.unique(a, axis=0)) == 3
    src.reseed(0)
    np.testing.assert_array_equal(src.plan_intents(obs), a)
    # evaluation draws do not shift the dataset's draws
    fresh = RandomIntentSource(6, seed=0)
    np.testing.assert_array_equal(src.pair_intents(obs, obs), fresh.pair_intents(obs, obs))


# --- the observation wrapper -------------------------------------------------------------------
def test_single_env_wrapper(source):
    env = IntentObservationWrapper(tasks.make_env(ENV), source)
    assert isinstance(env, IntentObservationWrapper) and isinstance(env, gym.Env)
    assert env.observation_space.shape == (14,)
    assert np.all(np.isinf(env.observation_space.low[4:])) and np.all(np.isinf(env.observation_space.high[4:]))
    source.reseed(0)
    obs, _ = env.reset(seed=11)
    plain, _ = tasks.make_env(ENV).reset(seed=11)
    np.testing.assert_array_equal(obs[:4], plain)
    source.reseed(0)
    np.testing.assert_allclose(obs[4:], source.plan_intents(plain[None])[0], atol=1e-6)
    for _ in range(3):
        obs, *_ = env.step(env.action_space.sample())
        assert obs.shape == (14,) and env.observation_space.contains(obs)
    again, _ = env.reset(seed=11)
    np.testing.assert_array_equal(again[:4], plain)
    rnd = IntentObservationWrapper(tasks.make_env(ENV), RandomIntentSource(10, 0))
    assert np.all(rnd.observation_space.low[4:] == 0) and np.all(rnd.observation_space.high[4:] == 1)
    assert rnd.observation_space.contains(rnd.reset(seed=0)[0])


def test_a_manager_path_serves_as_the_source(manager_path, source, flagged):
    """`IntentObservationWrapper(env, "runs/.../manager.pt")` and `augment_dataset(data, path)`: the
    path is loaded as the Manager's source for the env's / dataset's observation size."""
    from_path = augment_dataset(flagged, manager_path)["observations"]
    np.testing.assert_array_equal(from_path, augment_dataset(flagged, source)["observations"])
    env = IntentObservationWrapper(tasks.make_env(ENV), str(manager_path))
    assert isinstance(env.source, ManagerIntentSource) and env.observation_space.shape == (14,)
    source.reseed(0)
    plain, _ = tasks.make_env(ENV).reset(seed=5)
    np.testing.assert_allclose(env.reset(seed=5)[0][4:], source.plan_intents(plain[None])[0], atol=1e-6)
    envs = IntentObservationWrapper(tasks.make_vector_env(ENV, 2), manager_path)
    assert envs.reset(seed=[1, 2])[0].shape == (2, 14)
    envs.close()
    with pytest.raises(CheckpointError, match="size 4"):  # a Manager for another observation size
        augment_dataset({"observations": np.zeros((5, 7), np.float32)}, manager_path)
    with pytest.raises(TypeError, match="path of a manager.pt, got int"):
        IntentObservationWrapper(tasks.make_env(ENV), 3)


def test_vector_env_one_plan_call_per_step(source):
    spy = Spy(source)
    envs = wrap_env(tasks.make_vector_env(ENV, 3), spy)
    assert isinstance(envs, VectorIntentObservationWrapper) and isinstance(envs, gym.vector.VectorEnv)
    assert envs.single_observation_space.shape == (14,) and envs.observation_space.shape == (3, 14)
    obs, _ = envs.reset(seed=[1, 2, 3])
    assert spy.resets == 1 and len(spy.plan_calls) == 1 and spy.plan_calls[0].shape == (3, 4)
    first = obs.copy()
    for step in range(4):
        obs, reward, term, trunc, _ = envs.step(np.zeros((3, 2)))
        assert obs.shape == (3, 14) and envs.observation_space.contains(obs)
        assert len(spy.plan_calls) == step + 2 and spy.plan_calls[-1].shape == (3, 4)
        np.testing.assert_array_equal(obs[:, :4], spy.plan_calls[-1])
    np.testing.assert_array_equal(envs.last_intents, obs[:, 4:].astype(np.float32))
    obs, _ = envs.reset(seed=[1, 2, 3])
    assert spy.resets == 2
    np.testing.assert_array_equal(obs[:, :4], first[:, :4])
    envs.close()


def test_evaluate_policy_through_wrap_hook(source):
    seen = []

    def policy(obs):
        seen.append(obs.shape)
        return np.zeros((len(obs), 2), np.float32)

    spy = Spy(source)
    returns = tasks.evaluate_policy(ENV, policy, episodes=2, num_envs=2, wrap=lambda e: wrap_env(e, spy))
    assert returns.shape == (2,) and np.all(np.isfinite(returns))
    assert set(seen) == {(2, 14)} and len(spy.plan_calls) == len(seen) + 1  # one plan per step plus the reset
    # a ready wrapped env (the workers' path) and the random ablation
    envs = wrap_env(tasks.make_vector_env(ENV, 2), RandomIntentSource(10, 0))
    returns = tasks.evaluate_policy(ENV, policy, episodes=2, envs=envs)
    assert returns.shape == (2,)
    envs.close()


def test_none_leaves_dataset_and_env_untouched(flagged):
    src = make_intent_source("none", None, ENV, 4)
    assert augment(flagged, src) is flagged
    env = tasks.make_env(ENV)
    assert wrap_env(env, src) is env
    venv = tasks.make_vector_env(ENV, 2)
    assert wrap_env(venv, src) is venv
    venv.close()


def test_a_manager_source_for_another_obs_size_is_refused_where_it_is_handed_over(source):
    """An intent source object (not only a manager.pt path) is checked against the env or dataset it
    meets, at construction: not at the first reset, deep in the planner."""
    pendulum = gym.make("Pendulum-v1")  # observations of size 3; the Manager's are 4
    with pytest.raises(ValueError, match="expects observations of size 4, the env gives 3: it belongs to another"):
        IntentObservationWrapper(pendulum, source)
    bad = {"observations": np.zeros((20, 3), np.float32), "terminals": np.zeros(20), "timeouts": np.zeros(20)}
    with pytest.raises(ValueError, match="expects observations of size 4, the dataset has 3"):
        augment_dataset(bad, source)
    assert augment_dataset([], source) == [] and augment_dataset([], str(source.path)) == []  # nothing to check
    random_source = RandomIntentSource(5, seed=0)  # random intents fit any size
    assert IntentObservationWrapper(pendulum, random_source).observation_space.shape == (8,)


@pytest.mark.parametrize("keys", [("observations", "timeouts"), ("observations", "next_observations")])
def test_a_dataset_without_terminals_is_named_with_the_layouts_read(source, keys):
    from tasks.datasets import DatasetError

    dataset = {key: np.zeros((20, 4), np.float32) if "observations" in key else np.zeros(20, bool) for key in keys}
    with pytest.raises(DatasetError, match="the dataset has no 'terminals' .*D4RL's layouts"):
        augment_dataset(dataset, source)


def test_a_step_before_reset_is_gymnasiums_reset_needed(source):
    from gymnasium.error import ResetNeeded

    with pytest.raises(ResetNeeded):
        IntentObservationWrapper(tasks.make_env(ENV), source).step(np.zeros(2, np.float32))
