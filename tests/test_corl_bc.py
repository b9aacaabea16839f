"""Worker plumbing (corl/shared) and the BC worker, end to end with every intent mode."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from common.checkpoint import CheckpointError, load_checkpoint, save_atomic
from common.interrupt import TrainingInterrupted
from corl import any_percent_bc as bc
from corl.__main__ import WORKERS
from corl.shared import config as worker_config
from corl.shared.data import ReplayBuffer, episode_slices, modify_reward, normalize_dataset
from corl.shared.run import WorkerRun
from manager.trainer import TrainConfig, Trainer, resolve
from tests.worker_helpers import assert_two_marked_plugin_lines

ENV = "maze2d-umaze-v1"
ROOT = Path(__file__).resolve().parents[1]
WORKER_FILES = sorted(p for p in (ROOT / "corl").glob("*.py") if not p.name.startswith("__"))


def toy_transitions() -> dict[str, np.ndarray]:
    """Three episodes of lengths 2, 3, 2 (terminal-ended), rewards chosen by hand."""
    rewards = np.array([1, 1, 0, 0, 5, 2, 2], np.float32)
    terminals = np.array([0, 1, 0, 0, 1, 0, 1], bool)
    obs = np.arange(7, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    return {"observations": obs, "next_observations": obs + 1, "actions": obs[:, :2] / 10,
            "rewards": rewards, "terminals": terminals}


def test_episode_slices_and_keep_best_by_hand():
    data = toy_transitions()
    assert [(s.start, s.stop) for s in episode_slices(data)] == [(0, 2), (2, 5), (5, 7)]
    # discounted returns (0.5): [1 + .5, 0 + 0 + .25 * 5, 2 + 1] = [1.5, 1.25, 3.0]
    best = bc.keep_best_trajectories(data, frac=0.34, discount=0.5, max_episode_steps=1000)
    assert best["rewards"].tolist() == [2, 2]
    two = bc.keep_best_trajectories(data, frac=0.67, discount=0.5, max_episode_steps=1000)
    assert two["rewards"].tolist() == [2, 2, 1, 1]  # best first, as CORL orders them
    assert [(s.start, s.stop) for s in episode_slices(data, max_episode_steps=2)] == [(0, 2), (2, 4), (4, 5), (5, 7)]


def test_reward_handling_per_domain():
    data = toy_transitions()
    assert np.array_equal(modify_reward(data, "maze2d-umaze-v1")["rewards"], data["rewards"])
    assert np.array_equal(modify_reward(data, "antmaze-umaze-v2")["rewards"], data["rewards"] - 1)
    # returns 2, 5, 4 -> scale 1000 / (5 - 2)
    np.testing.assert_allclose(modify_reward(data, "halfcheetah-medium-v2")["rewards"], data["rewards"] * 1000 / 3)
    assert data["rewards"][0] == 1  # the input is not modified


def test_normalisation_and_bc_loss_by_hand():
    data = toy_transitions()
    out, mean, std = normalize_dataset(data)
    np.testing.assert_allclose(mean, 3.0)
    np.testing.assert_allclose(std, np.arange(7).std() + 1e-3, rtol=1e-6)
    np.testing.assert_allclose(out["next_observations"], (data["next_observations"] - 3.0) / std, rtol=1e-6)
    assert bc.bc_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])).item() == pytest.approx(2.5)


def test_replay_buffer_shapes_seed_and_state():
    data = toy_transitions()
    a, b = ReplayBuffer(data, "cpu", seed=1), ReplayBuffer(data, "cpu", seed=1)
    states, actions, rewards, next_states, dones = a.sample(16)
    assert states.shape == (16, 3) and actions.shape == (16, 2) and rewards.shape == dones.shape == (16, 1)
    assert torch.equal(next_states, states + 1)
    assert torch.equal(b.sample(16)[0], states)
    saved = a.state_dict()
    expected = a.sample(8)[0]
    b.load_state_dict(saved)
    assert torch.equal(b.sample(8)[0], expected)


def test_presets_and_command_line_precedence():
    cfg = worker_config.parse_worker_config(bc.BCConfig, "bc_10", ["--env", ENV, "--algo", "bc_10"])
    assert cfg.frac == 0.1 and cfg.algo == "bc_10"
    cfg = worker_config.parse_worker_config(bc.BCConfig, "bc_10", ["--env", ENV, "--algo", "bc_10", "--frac", "0.5"])
    assert cfg.frac == 0.5
    assert worker_config.parse_worker_config(bc.BCConfig, "bc", ["--env", ENV]).frac == 1.0
    with pytest.raises(Exception, match="maze2d-umaze-v1"):  # unknown env lists the known names
        worker_config.parse_worker_config(bc.BCConfig, "bc", ["--env", "maze2d-nowhere-v1"])


def test_each_worker_file_is_registered_and_has_exactly_the_two_marked_plugin_lines():
    registered = {module.split(".")[-1] for module in WORKERS.values()}
    assert {p.stem for p in WORKER_FILES} == registered  # no worker file outside WORKERS, none registered missing
    assert {"any_percent_bc", "awac", "cql", "dt", "idql", "iql", "td3_bc"} <= registered
    for path in WORKER_FILES:
        assert_two_marked_plugin_lines(path)


# --- end to end ---------------------------------------------------------------------------------
def run_bc(data_dir, runs_dir, intent, *extra):
    args = ["--algo", "bc", "--env", ENV, "--profile", "smoke", "--intent", intent, "--runs_dir", str(runs_dir),
            "--data_dir", str(data_dir), "--progress", "false", "--log_every", "50", "--checkpoint_every", "100",
            "--eval_num_envs", "2", *extra]
    return bc.train(worker_config.parse_worker_config(bc.BCConfig, "bc", args))


def test_end_to_end_manager_augment_worker_eval(data_dir, tmp_path):
    """The whole hierarchy at smoke size: Manager -> augmented dataset -> BC -> eval through the wrapper."""
    manager = Trainer(resolve(TrainConfig(mode="manager", env=ENV, profile="smoke", steps=100, runs_dir=str(tmp_path),
                                          data_dir=str(data_dir), log_every=50, checkpoint_every=100,
                                          progress=False))).train()
    assert Path(manager["manager"]).is_file()
    result = run_bc(data_dir, tmp_path, "manager")
    run_path = tmp_path / ENV / "bc" / "manager" / "seed0"
    assert json.loads((run_path / "final.json").read_text()) == result
    assert result["eval_episodes"] == 2 and np.isfinite(result["normalized_score"])
    config = (run_path / "config.yaml").read_text()
    assert "obs_dim: 14" in config  # 4 state dims + 10 intent dims
    rows = (run_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,actor_loss,eval_normalized_score") and len(rows) == 5


@pytest.mark.parametrize("intent", ["none", "random"])
def test_bc_trains_and_resumes(data_dir, tmp_path, intent):
    whole = run_bc(data_dir, tmp_path / "a", intent)
    assert run_bc(data_dir, tmp_path / "b", intent, "--chunk_steps", "100") is None
    # a resume with settings that change the numbers is refused, naming them (the checkpoint stays)
    with pytest.raises(CheckpointError, match=r"other settings \(actor_lr 0.0003 -> 0.001; steps 200 -> 300\)"):
        run_bc(data_dir, tmp_path / "b", intent, "--steps", "300", "--actor_lr", "1e-3")
    resumed = run_bc(data_dir, tmp_path / "b", intent, "--chunk_steps", "100", "--progress", "true")
    assert resumed["normalized_score"] == whole["normalized_score"]
    metrics = [(tmp_path / x / ENV / "bc" / intent / "seed0" / "metrics.csv").read_text().splitlines() for x in "ab"]
    strip = lambda rows: [r.rsplit(",", 1)[0] for r in rows]  # noqa: E731 (drop steps_per_s)
    assert strip(metrics[0]) == strip(metrics[1])
    losses = [float(r.split(",")[1]) for r in metrics[0][1:]]
    assert losses[-1] < losses[0]  # cloning makes progress


def test_ctrl_c_stops_at_the_next_log_row_and_resumes_bit_for_bit(signals_as_at_a_terminal, data_dir, tmp_path, monkeypatch):
    """SIGINT at step 130 (log rows every 50): the run goes on to step 150, logs and checkpoints it,
    stops with a clear error; the same command then ends exactly as an uninterrupted run."""
    whole = run_bc(data_dir, tmp_path / "a", "none")
    original, updates = bc.BC.update, []

    def update_then_ctrl_c(self, batch):
        updates.append(1)
        if len(updates) == 130:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch)

    monkeypatch.setattr(bc.BC, "update", update_then_ctrl_c)
    with pytest.raises(TrainingInterrupted, match=r"SIGINT at step 150/200; checkpoint .*checkpoint.pt"):
        run_bc(data_dir, tmp_path / "b", "none")
    run_b = tmp_path / "b" / ENV / "bc" / "none" / "seed0"
    assert len(updates) == 150 and torch.load(run_b / "checkpoint.pt", weights_only=True)["step"] == 150
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    monkeypatch.undo()
    assert run_bc(data_dir, tmp_path / "b", "none") == whole
    strip = lambda path: [r.rsplit(",", 1)[0] for r in path.read_text().splitlines()]  # noqa: E731 (steps_per_s)
    assert strip(run_b / "metrics.csv") == strip(tmp_path / "a" / ENV / "bc" / "none" / "seed0" / "metrics.csv")


def test_the_last_steps_evaluation_is_the_final_one(data_dir, tmp_path, monkeypatch):
    """Evaluations at eval_every; at the last step one evaluation with final_eval_episodes, logged as
    the last row's score and reported in final.json (not a periodic one and then the final one)."""
    calls = []
    original = WorkerRun.evaluate_targets

    def counting(self, algo, policy, eval_env, episodes):
        calls.append(episodes)
        return original(self, algo, policy, eval_env, episodes)

    monkeypatch.setattr(WorkerRun, "evaluate_targets", counting)
    result = run_bc(data_dir, tmp_path, "random", "--steps", "200", "--eval_every", "100", "--eval_episodes", "2",
                    "--final_eval_episodes", "4")
    assert calls == [2, 4] and result["eval_episodes"] == 4
    rows = (tmp_path / ENV / "bc" / "random" / "seed0" / "metrics.csv").read_text().splitlines()
    assert float(rows[-1].split(",")[2]) == pytest.approx(result["normalized_score"])
    # resumed from the last step's checkpoint without final.json: the final evaluation again, same numbers
    (tmp_path / ENV / "bc" / "random" / "seed0" / "final.json").unlink()
    calls.clear()
    assert run_bc(data_dir, tmp_path, "random", "--steps", "200", "--eval_every", "100", "--eval_episodes", "2",
                  "--final_eval_episodes", "4") == result and calls == [4]


def test_worker_cli_errors_are_clear(data_dir, tmp_path, capsys):
    from corl.__main__ import main as corl_main

    assert corl_main(["sac_n", "--env", ENV]) == 2
    err = capsys.readouterr().err
    assert "unknown worker 'sac_n'" in err and all(name in err for name in ("bc_10", "cql", "dt", "idql"))
    assert corl_main(["bc", "--env", ENV, "--intent", "manager", "--runs_dir", str(tmp_path),
                      "--data_dir", str(data_dir), "--profile", "smoke", "--progress", "false"]) == 2
    assert "make manager" in capsys.readouterr().err  # no manager trained for this env and seed yet
    assert corl_main(["bc", "--env", ENV, "--intent", "sideways"]) == 2
    assert "none | manager | random" in capsys.readouterr().err
    # a Manager given to a run without Manager intents would be ignored: refused, before any work
    assert corl_main(["bc", "--env", ENV, "--manager", "m.pt", "--runs_dir", str(tmp_path / "no_runs")]) == 2
    assert "is read only with --intent manager, this run has --intent none" in capsys.readouterr().err
    assert not (tmp_path / "no_runs").exists()
    # the worker file run on its own (CORL's `python algorithms/offline/iql.py` habit) says the same, no traceback
    assert bc.main(["--env", ENV, "--intent", "sideways"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown intent 'sideways'") and "Traceback" not in err
    assert bc.main(["--env", "maze2d-mediun-v1"]) == 2
    assert "Did you mean 'maze2d-medium-v1'" in capsys.readouterr().err
    # counts below their least value stop before any data is read or any folder written (a negative
    # --steps used to write a finished run of an untrained policy; a zero --log_every divided by zero)
    for flag, value in (("--steps", "-5"), ("--log_every", "0"), ("--final_eval_episodes", "0"),
                        ("--chunk_steps", "-1"), ("--batch_size", "0")):
        assert bc.main(["--env", ENV, "--runs_dir", str(tmp_path / "bad"), "--data_dir", str(tmp_path / "none"),
                        flag, value]) == 2
        assert capsys.readouterr().err == f"error: {flag} must be at least {0 if flag == '--chunk_steps' else 1}, " \
                                          f"got {value}\n"
    assert not (tmp_path / "bad").exists()


def test_resume_with_another_observation_size_is_refused(data_dir, tmp_path):
    """A checkpoint written with 10-D random intents cannot be resumed with 5-D ones."""

    assert run_bc(data_dir, tmp_path, "random", "--chunk_steps", "100") is None
    with pytest.raises(CheckpointError, match="size 14.*size 9"):
        run_bc(data_dir, tmp_path, "random", "--intent_dim", "5")


def test_resume_on_other_data_is_refused(data_dir, tmp_path):
    """The state statistics the checkpoint was trained with must be the data's now (a replaced dataset or
    Manager changes them): refused with the fix, the checkpoint kept."""
    assert run_bc(data_dir, tmp_path, "none", "--chunk_steps", "100") is None
    path = tmp_path / ENV / "bc" / "none" / "seed0" / "checkpoint.pt"
    state = load_checkpoint(path)
    state["obs_std"] = state["obs_std"] * 2
    save_atomic(state, path)
    with pytest.raises(CheckpointError, match="trained on other data: .* pass --overwrite"):
        run_bc(data_dir, tmp_path, "none", "--chunk_steps", "100")
    assert torch.equal(load_checkpoint(path)["obs_std"], state["obs_std"])


def test_a_resumed_worker_names_the_commit_it_started_with(data_dir, tmp_path, monkeypatch):
    """As the Manager's trainer: the commit is read when the call starts, not when final.json is written."""
    import functools

    import corl.shared.run as run_module

    head = {"commit": "old"}
    assert run_bc(data_dir, tmp_path, "none", "--chunk_steps", "100") is None
    monkeypatch.setattr(run_module, "code_version", functools.cache(lambda: head["commit"]))  # a fresh process
    original = bc.BC.update

    def update_then_commit(self, batch):
        head["commit"] = "new"  # work lands while the run trains
        return original(self, batch)

    monkeypatch.setattr(bc.BC, "update", update_then_commit)
    assert run_bc(data_dir, tmp_path, "none")["code_version"] == "old"
