"""corl_patches/: the patches' shape, the pattern edits, and the hooks they call on a legacy-gym env."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import gymnasium
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "corl_patches"))
import build as patches  # noqa: E402  (corl_patches/build.py)

from wrappers import corl_hook  # noqa: E402

ALGOS = ("any_percent_bc", "awac", "iql", "td3_bc", "cql", "dt")


@pytest.mark.parametrize("algo", ALGOS)
def test_each_patch_adds_one_import_and_the_two_marked_lines(algo):
    text = (ROOT / "corl_patches" / f"{algo}.patch").read_text()
    added = [line[1:] for line in text.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:] for line in text.splitlines() if line.startswith("-") and not line.startswith("---")]
    marked = [line for line in added if patches.MARK in line]
    assert len(marked) == 2, marked
    assert sum("plugin_augment(dataset" in line for line in marked) == 1
    assert sum("plugin_wrap_env(gym.make(" in line for line in marked) == 1
    assert [line for line in added if "import" in line] == [patches.IMPORT.rstrip("\n")]
    assert len(removed) <= 1 and all("gym.make(" in line for line in removed)  # only the env line is rewritten
    assert f"a/algorithms/offline/{algo}.py" in text


def test_pattern_edits_on_a_corl_like_script():
    script = ("import gym\nimport wandb\n\ndef train(config):\n    env = gym.make(config.env_name)\n"
              "    state_dim = env.observation_space.shape[0]\n    dataset = d4rl.qlearning_dataset(env)\n")
    out = patches.patched_text(script, patches.TRANSITION_EDITS, "awac.py")
    assert "    env = plugin_wrap_env(gym.make(config.env_name), config.env_name)  # PLUGIN(intents)\n" in out
    assert out.index("plugin_wrap_env") < out.index("state_dim")
    assert "    dataset = plugin_augment(dataset, config.env_name)  # PLUGIN(intents)\n" in out
    assert out.index("import wandb\nfrom wrappers.corl_hook") > 0
    with pytest.raises(SystemExit, match="expected one match"):
        patches.patched_text(script.replace("qlearning_dataset", "sequence_dataset"), patches.TRANSITION_EDITS, "x.py")


def test_build_names_a_folder_that_is_not_a_corl_checkout(tmp_path):
    with pytest.raises(SystemExit, match="lacks algorithms/offline/any_percent_bc.py and 5 more.*git clone"):
        patches.main([str(tmp_path)])
    for path in patches.EDITS:  # CORL's files, but no git repository around them
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    with pytest.raises(SystemExit, match="not a git repository"):
        patches.main([str(tmp_path), "--check"])


@pytest.mark.skipif(not os.environ.get("CORL_CHECKOUT"), reason="set CORL_CHECKOUT=/path/to/CORL to check the patches apply")
def test_patches_apply_to_a_corl_checkout():
    subprocess.run([sys.executable, str(ROOT / "corl_patches" / "build.py"), os.environ["CORL_CHECKOUT"], "--check"],
                   check=True)


# --- the hooks ------------------------------------------------------------------------------------
class LegacyPointEnv:
    """gym 0.23's API: reset() -> obs, step -> (obs, reward, done, info), seed(), get_dataset()."""

    def __init__(self):
        self.observation_space = gymnasium.spaces.Box(-1, 1, (3,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
        self.reward_range, self.metadata, self.spec = (0, 1), {}, None
        self._max_episode_steps = 7
        self.t = 0

    def reset(self, **kwargs):
        self.t = 0
        return np.zeros(3, np.float32)

    def step(self, action):
        self.t += 1
        return np.full(3, self.t, np.float32), 1.0, False, {}

    def seed(self, seed=None):
        return [seed]

    def get_dataset(self):
        return {"observations": np.zeros((4, 3), np.float32)}


def fake_legacy_gym() -> types.ModuleType:
    """A stand-in for the legacy `gym` package: its ObservationWrapper contract (attribute forwarding,
    reset/step passing observations through `observation`)."""
    module = types.ModuleType("gym")
    module.spaces = gymnasium.spaces

    class Wrapper:
        def __init__(self, env):
            self.env = env
            self.observation_space = env.observation_space
            self.action_space = env.action_space

        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(f"attempted to get missing private attribute '{name}'")
            return getattr(self.env, name)

    class ObservationWrapper(Wrapper):
        def reset(self, **kwargs):
            return self.observation(self.env.reset(**kwargs))

        def step(self, action):
            obs, reward, done, info = self.env.step(action)
            return self.observation(obs), reward, done, info

    module.Wrapper, module.ObservationWrapper = Wrapper, ObservationWrapper
    return module


@pytest.fixture
def random_intents(monkeypatch):
    monkeypatch.setenv("IQL_TD_MPC_INTENT", "random")
    monkeypatch.setenv("IQL_TD_MPC_SEED", "3")
    monkeypatch.setenv("IQL_TD_MPC_INTENT_DIM", "4")
    monkeypatch.setitem(sys.modules, "gym", fake_legacy_gym())
    monkeypatch.setattr(corl_hook, "_SOURCES", {})


def test_hooks_do_nothing_without_settings(monkeypatch):
    monkeypatch.delenv("IQL_TD_MPC_INTENT", raising=False)
    env, data = LegacyPointEnv(), {"observations": np.zeros((2, 3), np.float32)}
    assert corl_hook.plugin_wrap_env(env, "maze2d-umaze-v1") is env
    assert corl_hook.plugin_augment(data, "maze2d-umaze-v1") is data


def test_legacy_wrapper_appends_intents_and_forwards_corl_calls(random_intents):
    env = corl_hook.plugin_wrap_env(LegacyPointEnv(), "maze2d-umaze-v1")
    assert env.observation_space.shape == (7,)
    assert env.observation_space.low[-1] == 0 and env.observation_space.high[-1] == 1
    obs = env.reset()
    assert obs.shape == (7,) and np.all(obs[:3] == 0) and np.all((obs[3:] >= 0) & (obs[3:] <= 1))
    obs2, reward, done, _ = env.step(np.zeros(2))
    assert np.all(obs2[:3] == 1) and reward == 1.0 and not done
    assert not np.array_equal(obs[3:], obs2[3:])  # a fresh random intent every step
    assert env.seed(5) == [5] and env.get_dataset()["observations"].shape == (4, 3)
    assert env._max_episode_steps == 7  # d4rl.qlearning_dataset may read it


def test_augment_hook_shares_the_source_with_the_env_hook(random_intents):
    data = {"observations": np.random.rand(6, 3).astype(np.float32), "next_observations": np.random.rand(6, 3).astype(np.float32),
            "actions": np.zeros((6, 2), np.float32), "rewards": np.zeros(6, np.float32),
            "terminals": np.zeros(6, bool)}
    out = corl_hook.plugin_augment(data, "maze2d-umaze-v1")
    assert out["observations"].shape == (6, 7) and out["next_observations"].shape == (6, 7)
    np.testing.assert_array_equal(out["observations"][:, :3], data["observations"])
    corl_hook.plugin_wrap_env(LegacyPointEnv(), "maze2d-umaze-v1")
    assert len(corl_hook._SOURCES) == 1  # one source per (env, obs size), shared by both hooks


def test_hook_settings_errors_are_actionable(monkeypatch):
    monkeypatch.setattr(corl_hook, "_SOURCES", {})
    monkeypatch.setenv("IQL_TD_MPC_INTENT", "sideways")
    with pytest.raises(ValueError, match="none | manager | random"):
        corl_hook.plugin_wrap_env(LegacyPointEnv(), "maze2d-umaze-v1")
    monkeypatch.setenv("IQL_TD_MPC_INTENT", "manager")
    monkeypatch.delenv("IQL_TD_MPC_MANAGER", raising=False)
    with pytest.raises(ValueError, match="IQL_TD_MPC_MANAGER"):
        corl_hook.plugin_wrap_env(LegacyPointEnv(), "maze2d-umaze-v1")


def test_manager_hook_refuses_a_manager_for_another_obs_size(monkeypatch, smoke_manager):
    monkeypatch.setattr(corl_hook, "_SOURCES", {})
    monkeypatch.setenv("IQL_TD_MPC_INTENT", "manager")
    monkeypatch.setenv("IQL_TD_MPC_MANAGER", str(smoke_manager))
    monkeypatch.setenv("IQL_TD_MPC_DEVICE", "cpu")
    with pytest.raises(Exception, match="size"):
        corl_hook.plugin_augment({"observations": np.zeros((2, 5), np.float32)}, "maze2d-umaze-v1")
    data = {"observations": np.random.rand(20, 4).astype(np.float32), "next_observations": np.random.rand(20, 4).astype(np.float32),
            "actions": np.zeros((20, 2), np.float32), "rewards": np.zeros(20, np.float32), "terminals": np.zeros(20, bool)}
    assert corl_hook.plugin_augment(data, "maze2d-umaze-v1")["observations"].shape == (20, 14)
