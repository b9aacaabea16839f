"""Batched evaluation, normalised scores and the registry."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.evaluation import episode_seed
from tasks import (TASKS, UnknownTaskError, evaluate_policy, get_normalized_score, get_task, make_env,
                   make_policy, make_vector_env)

D4RL_REFS = {"maze2d-umaze-v1": (23.85, 161.86, 300), "maze2d-medium-v1": (13.13, 277.39, 600),
             "maze2d-large-v1": (6.7, 273.99, 800)}


@pytest.mark.parametrize("name", sorted(D4RL_REFS))
def test_registry_holds_d4rl_constants(name):
    spec = get_task(name)
    assert (spec.ref_min_score, spec.ref_max_score, spec.max_episode_steps) == D4RL_REFS[name]
    assert spec.dataset_file == name.replace("-v1", "-sparse-v1.hdf5")
    assert get_normalized_score(name, spec.ref_min_score) == pytest.approx(0.0)
    assert get_normalized_score(name, spec.ref_max_score) == pytest.approx(100.0)
    returns = np.array([spec.ref_min_score, spec.ref_max_score, 2 * spec.ref_max_score - spec.ref_min_score])
    assert get_normalized_score(name, returns).tolist() == pytest.approx([0, 100, 200])


def test_unknown_env_lists_the_known_names():
    with pytest.raises(UnknownTaskError) as err:
        make_env("maze2d-umaze-v9")
    msg = str(err.value)
    assert "unknown env name 'maze2d-umaze-v9'" in msg and "Did you mean 'maze2d-umaze-v1'" in msg
    for name in TASKS:
        assert name in msg


def test_vector_env_steps_in_lockstep_without_autoreset():
    envs = make_vector_env("maze2d-umaze-v1", 3)
    obs, _ = envs.reset(seed=[0, 1, 2])
    assert obs.shape == (3, 4)
    singles = [make_env("maze2d-umaze-v1") for _ in range(3)]
    single_obs = np.stack([e.reset(seed=s)[0] for e, s in zip(singles, range(3))])
    assert np.array_equal(obs, single_obs)
    actions = np.tile([[0.5, -0.5]], (3, 1))
    for t in range(300):
        obs, reward, terminated, truncated, _ = envs.step(actions)
    assert truncated.all() and not terminated.any()


@pytest.mark.parametrize("policy", ["controller", "random"])
def test_batched_evaluation_does_not_depend_on_num_envs(policy):
    name = "maze2d-umaze-v1"
    one = evaluate_policy(name, make_policy(name, policy, seed=2), episodes=5, seed=2, num_envs=1)
    three = evaluate_policy(name, make_policy(name, policy, seed=2), episodes=5, seed=2, num_envs=3)
    five = evaluate_policy(name, make_policy(name, policy, seed=2), episodes=5, seed=2)
    assert np.array_equal(one, three) and np.array_equal(one, five)
    other = evaluate_policy(name, make_policy(name, policy, seed=3), episodes=5, seed=3)
    assert not np.array_equal(one, other)


def test_batched_returns_equal_single_env_rollouts():
    name = "maze2d-umaze-v1"

    def push_to_goal(obs):  # deterministic: PD control straight at the goal cell (1, 1)
        return np.clip(10 * (np.array([1.0, 1.0]) - obs[..., :2]) - obs[..., 2:], -1, 1)

    batched = evaluate_policy(name, push_to_goal, episodes=6, seed=5, num_envs=4)
    for e in range(6):
        env = make_env(name)
        obs, _ = env.reset(seed=episode_seed(5, e))
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(push_to_goal(obs))
            total += reward
            done = terminated or truncated
        assert batched[e] == total
    assert batched.max() > 0 and batched.min() < batched.max()  # some starts reach the goal, some not


def test_evaluation_wrap_hook_sees_the_vector_env():
    seen = []

    def wrap(envs):
        seen.append(envs.num_envs)
        return envs

    evaluate_policy("maze2d-umaze-v1", make_policy("maze2d-umaze-v1", "random"), episodes=4, num_envs=2, wrap=wrap)
    assert seen == [2]


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="unknown policy 'expert'.*random, controller"):
        make_policy("maze2d-umaze-v1", "expert")



class NaNInSlot1AtStep3OfRound2:
    """Zero actions, except a NaN for env slot 1 at step 3 of the second round (episodes 4-7)."""

    def __init__(self):
        self.rounds, self.step = 0, 0

    def reset(self, episode_ids):
        self.rounds, self.step = self.rounds + 1, 0

    def __call__(self, obs):
        actions = np.zeros((len(obs), 2), np.float32)
        if self.rounds == 2 and self.step == 3:
            actions[1, 0] = np.nan
        self.step += 1
        return actions


def test_non_finite_actions_stop_the_evaluation_naming_episode_and_step():
    """MuJoCo would zero a NaN control (with a warning) and the score would mean nothing."""
    with pytest.raises(ValueError, match=r"non-finite actions \(NaN or Inf\) in episode\(s\) \[5\] at step 3 of an "
                                         r"evaluation on maze2d-umaze-v1"):
        evaluate_policy("maze2d-umaze-v1", NaNInSlot1AtStep3OfRound2(), episodes=6, num_envs=4, seed=0)
