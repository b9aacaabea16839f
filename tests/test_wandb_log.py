"""The optional W&B mirror (common/wandb_log.py): metrics.csv's rows at their steps, final.json in the
summary, one W&B run per run folder continued across resumed calls and renewed by --overwrite,
failed calls marked, offline by default; for the workers, the Manager and stacked seeds. A stand-in
`wandb` module records the calls; one test runs the real library offline."""
from __future__ import annotations

import dataclasses
import os
import sys
import types
from pathlib import Path

import pytest

import corl.any_percent_bc as bc
from common.wandb_log import ID_FILE, WandbMirror, closing
from manager.stacked_training import train_stacked
from manager.trainer import TrainConfig, Trainer, resolve
from tests.worker_helpers import ENV, metrics_rows, smoke_run


class FakeRun:
    def __init__(self, kwargs):
        self.kwargs, self.logged, self.summary, self.exit_code = kwargs, [], {}, None

    def log(self, row, step):
        self.logged.append((step, dict(row)))

    def finish(self, exit_code=0):
        self.exit_code = exit_code


@pytest.fixture
def fake_wandb(monkeypatch):
    """A `wandb` module that records every run it opens (in order)."""
    module = types.ModuleType("wandb")
    module.runs = []

    def init(**kwargs):
        module.runs.append(FakeRun(kwargs))
        return module.runs[-1]

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    return module


def run_path(runs_dir, algo="bc", intent="none", seed=0) -> Path:
    return Path(runs_dir) / ENV / algo / intent / f"seed{seed}"


def test_a_worker_mirrors_its_rows_and_continues_one_run_across_calls(data_dir, tmp_path, fake_wandb):
    runs = tmp_path / "runs"
    first = smoke_run(bc.train, bc.BCConfig, "bc", data_dir, runs, "none", "--wandb", "true", "--chunk_steps", "100")
    assert first is None and len(fake_wandb.runs) == 1
    call = fake_wandb.runs[0]
    run_id = (run_path(runs) / ID_FILE).read_text().strip()
    assert call.kwargs["id"] == run_id and call.kwargs["resume"] == "allow" and call.kwargs["dir"] == str(run_path(runs))
    assert call.kwargs["name"] == f"bc-{ENV}-none-seed0" and call.kwargs["config"]["steps"] == 200
    assert os.environ["WANDB_MODE"] == "offline"  # no account, no network unless asked
    assert call.exit_code == 0 and call.summary == {}  # a chunk: nothing to report yet
    result = smoke_run(bc.train, bc.BCConfig, "bc", data_dir, runs, "none", "--wandb", "true")
    resumed = fake_wandb.runs[1]
    assert resumed.kwargs["id"] == run_id and resumed.exit_code == 0
    assert resumed.summary["normalized_score"] == result["normalized_score"]
    # every metrics.csv row, at its step, once over the two calls
    logged = [(step, row) for run in fake_wandb.runs for step, row in run.logged]
    rows = metrics_rows(runs, "bc", "none")
    assert [step for step, _ in logged] == [int(r["step"]) for r in rows] == [50, 100, 150, 200]
    for (step, row), csv_row in zip(logged, rows):
        assert row["actor_loss"] == pytest.approx(float(csv_row["actor_loss"]))
        assert "step" not in row and all(value != "" for value in row.values())
    assert logged[-1][1]["eval_normalized_score"] == pytest.approx(float(rows[-1]["eval_normalized_score"]))
    # --overwrite starts a new W&B run, not the old one's continuation
    smoke_run(bc.train, bc.BCConfig, "bc", data_dir, runs, "none", "--wandb", "true", "--overwrite", "true")
    assert fake_wandb.runs[2].kwargs["id"] != run_id == resumed.kwargs["id"]


def test_the_manager_mirrors_single_and_stacked_seeds(data_dir, tmp_path, fake_wandb):
    base = TrainConfig(mode="manager", env=ENV, profile="smoke", steps=100, runs_dir=str(tmp_path / "runs"),
                       data_dir=str(data_dir), log_every=50, checkpoint_every=100, progress=False, wandb=True)
    result = Trainer(resolve(base)).train()
    (call,) = fake_wandb.runs
    assert call.kwargs["name"] == f"manager-{ENV}-seed0" and call.kwargs["config"]["agent"]["latent_dim"] == 10
    assert [step for step, _ in call.logged] == [50, 100] and "consistency" in call.logged[0][1]
    assert call.summary["manager"] == result["manager"] and call.exit_code == 0
    train_stacked(resolve(dataclasses.replace(base, seeds="1,2")), [1, 2])
    stacked = fake_wandb.runs[1:]
    assert [run.kwargs["name"] for run in stacked] == [f"manager-{ENV}-seed1", f"manager-{ENV}-seed2"]
    assert all([step for step, _ in run.logged] == [50, 100] and run.exit_code == 0 and run.summary
               for run in stacked)
    assert len({run.kwargs["id"] for run in fake_wandb.runs}) == 3


def test_a_call_that_fails_closes_unfinished_runs_as_failed(tmp_path, fake_wandb):
    finished = WandbMirror(tmp_path / "a", "p", "g", "a", {}, fresh=True)
    unfinished = WandbMirror(tmp_path / "b", "p", "g", "b", {}, fresh=True)
    with pytest.raises(KeyboardInterrupt):
        with closing([finished, unfinished]):
            finished.result = {"normalized_score": 1.0}
            raise KeyboardInterrupt
    assert (finished.run.exit_code, finished.run.summary) == (0, {"normalized_score": 1.0})
    assert (unfinished.run.exit_code, unfinished.run.summary) == (1, {})


def test_the_real_library_offline(data_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    runs = tmp_path / "runs"
    smoke_run(bc.train, bc.BCConfig, "bc", data_dir, runs, "none", "--wandb", "true", "--chunk_steps", "100")
    smoke_run(bc.train, bc.BCConfig, "bc", data_dir, runs, "none", "--wandb", "true")
    run_id = (run_path(runs) / ID_FILE).read_text().strip()
    offline = sorted((run_path(runs) / "wandb").glob("offline-run-*"))
    assert len(offline) == 2 and all(folder.name.endswith(f"-{run_id}") for folder in offline)
    assert all((folder / f"run-{run_id}.wandb").stat().st_size > 0 for folder in offline)
