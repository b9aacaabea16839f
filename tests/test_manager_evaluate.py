"""`python -m manager evaluate RUN_DIR`: a flat agent scored again from its checkpoint alone. With the
run's seed and episodes it replays final.json's score exactly (IQL-TD-MPC's policy-sample planning,
TD-MPC's MPPI); checkpoints carry the observation statistics (older ones get them from the dataset);
a resume on a different dataset is refused; a Manager run and bad folders are clear errors."""
from __future__ import annotations

import json

import pytest
import torch

from common.checkpoint import CheckpointError, load_checkpoint, save_atomic
from common.evaluations import result_path
from manager.__main__ import main as manager_main
from manager.evaluate import evaluate_run
from manager.trainer import TrainConfig, Trainer, resolve

ENV = "maze2d-umaze-v1"


def train_flat(data_dir, runs_dir, mode, **kw):
    cfg = TrainConfig(mode=mode, env=ENV, profile="smoke", steps=kw.pop("steps", 100), runs_dir=str(runs_dir),
                      data_dir=str(data_dir), log_every=50, checkpoint_every=50, eval_episodes=3, eval_num_envs=2,
                      progress=False, **kw)
    return Trainer(resolve(cfg)).train()


@pytest.mark.parametrize("mode", ["iql_td_mpc", "td_mpc"])
def test_the_final_evaluation_replays_from_the_checkpoint(data_dir, tmp_path, mode):
    result = train_flat(data_dir, tmp_path, mode)
    run_dir = tmp_path / ENV / mode / "seed0"
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["obs_mean"].shape == (4,) and state["act_dim"] == 2  # the checkpoint alone can act
    replay = evaluate_run(run_dir, device="cpu")
    assert replay["normalized_score"] == result["normalized_score"] and replay["replays_final_json"]
    assert (replay["episodes"], replay["eval_seed"], replay["checkpoint_step"]) == (3, 0, 100)
    # a checkpoint written before the statistics were stored: they come from the run's dataset
    del state["obs_mean"], state["obs_std"], state["act_dim"]
    save_atomic(state, run_dir / "checkpoint.pt")
    assert evaluate_run(run_dir, device="cpu")["normalized_score"] == result["normalized_score"]


def test_the_command_writes_and_reports_and_refuses_manager_runs(data_dir, tmp_path, capsys):
    train_flat(data_dir, tmp_path, "iql_td_mpc")
    run_dir = tmp_path / ENV / "iql_td_mpc" / "seed0"
    final = json.loads((run_dir / "final.json").read_text())
    assert manager_main(["evaluate", str(run_dir), "--episodes", "4", "--seed", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr()
    written = json.loads(result_path(run_dir, 4, 3).read_text())
    assert (written["episodes"], written["eval_seed"], written["mode"]) == (4, 3, "iql_td_mpc")
    assert f"normalized_score={written['normalized_score']}" in out.out and "wrote" in out.err
    assert manager_main(["evaluate", str(run_dir), "--device", "cpu"]) == 0
    assert f"normalized_score={final['normalized_score']}" in capsys.readouterr().out
    assert manager_main(["evaluate", str(run_dir), "--device", "cpu"]) == 0  # the same again: reported
    assert "exists for this checkpoint (step 100); reporting it" in capsys.readouterr().err
    # a Manager is no env policy; a folder without a checkpoint names what it wants
    Trainer(resolve(TrainConfig(mode="manager", env=ENV, profile="smoke", steps=50, runs_dir=str(tmp_path),
                                data_dir=str(data_dir), log_every=50, checkpoint_every=50, progress=False))).train()
    assert manager_main(["evaluate", str(tmp_path / ENV / "manager" / "seed0")]) == 2
    assert "is a Manager run" in capsys.readouterr().err
    assert manager_main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "holds no checkpoint.pt" in capsys.readouterr().err
    # each command names the other for the other's checkpoints
    from corl.__main__ import main as corl_main

    assert corl_main(["evaluate", str(run_dir)]) == 2
    assert "is not a worker's checkpoint" in capsys.readouterr().err


def test_a_resume_on_another_dataset_is_refused(data_dir, tmp_path):
    assert train_flat(data_dir, tmp_path, "td_mpc", steps=100, chunk_steps=50) is None
    path = tmp_path / ENV / "td_mpc" / "seed0" / "checkpoint.pt"
    state = load_checkpoint(path)
    state["obs_mean"] = state["obs_mean"] + 1.0  # as if trained on other data
    save_atomic(state, path)
    with pytest.raises(CheckpointError, match="trained on other data: .* of this maze2d-umaze-v1 dataset"):
        train_flat(data_dir, tmp_path, "td_mpc", steps=100, chunk_steps=50)
    assert torch.equal(load_checkpoint(path)["obs_mean"], state["obs_mean"])  # the checkpoint stays
