"""A full disk stops a run with one error line naming the file, what is intact and the fix; the files
it was replacing stay as they were, and the same command afterwards resumes to the numbers of a run
that never stopped (the Manager through its checkpoint, a worker through a metrics row cut short)."""
from __future__ import annotations

import csv
import errno
from pathlib import Path

import pytest
import torch

import common.errors as errors
from common.atomic import atomic_path, write_text_atomic
from common.checkpoint import load_checkpoint, save_atomic
from common.errors import DiskFull
from common.run_dir import RunDir
from corl.__main__ import main as corl_main
from manager.__main__ import main as manager_main
from tests.worker_helpers import ENV


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_atomic_write_stopped_by_a_full_disk_leaves_the_old_file(tmp_path):
    target = tmp_path / "final.json"
    write_text_atomic(target, "old\n")
    with pytest.raises(DiskFull) as caught:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            no_space()
    message = str(caught.value)
    assert f"no space left on the device of {tmp_path}" in message and "final.json is as it was before" in message
    assert "run the same command again" in message and caught.value.errno == errno.ENOSPC
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["final.json"]
    with pytest.raises(DiskFull, match="new.json was not made"):
        with atomic_path(tmp_path / "new.json"):
            no_space()


def test_torch_saves_failure_is_taken_for_a_full_disk_only_when_the_disk_is_nearly_full(tmp_path, monkeypatch):
    def stream_writer_failure(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    monkeypatch.setattr(torch, "save", stream_writer_failure)
    with pytest.raises(RuntimeError, match="PytorchStreamWriter") as caught:  # plenty of space: torch's error
        save_atomic({"x": 1}, tmp_path / "checkpoint.pt")
    assert not isinstance(caught.value, DiskFull)
    monkeypatch.setattr(errors, "free_bytes", lambda folder: 3 * 2**20)
    with pytest.raises(DiskFull, match=r"\(3 MiB free\) while writing checkpoint.pt; checkpoint.pt was not made"):
        save_atomic({"x": 1}, tmp_path / "checkpoint.pt")
    assert list(tmp_path.iterdir()) == []


def train_manager(runs: Path, data_dir, steps: int = 200) -> int:
    return manager_main(["train", "--mode", "manager", "--env", ENV, "--profile", "smoke", "--steps", str(steps),
                         "--runs-dir", str(runs), "--data-dir", str(data_dir), "--log-every", "50",
                         "--checkpoint-every", "100", "--no-progress"])


def test_a_manager_whose_checkpoint_meets_a_full_disk_stops_and_resumes(data_dir, tmp_path, monkeypatch, capsys):
    assert train_manager(tmp_path / "whole", data_dir) == 0
    real_save, saves = torch.save, []

    def full_at_the_second_checkpoint(obj, f):
        saves.append(1)
        if len(saves) == 2:
            no_space()
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", full_at_the_second_checkpoint)
    runs = tmp_path / "stopped"
    assert train_manager(runs, data_dir) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no space left on the device of ")
    assert "checkpoint.pt is as it was before" in err[0] and "resumes from its last checkpoint" in err[0]
    run_dir = runs / ENV / "manager" / "seed0"
    assert load_checkpoint(run_dir / "checkpoint.pt")["agent"]["step"] == 100 and not (run_dir / "final.json").exists()
    monkeypatch.undo()
    assert train_manager(runs, data_dir) == 0  # the same command, space freed: resumes from step 100
    whole = torch.load(tmp_path / "whole" / ENV / "manager" / "seed0" / "manager.pt", weights_only=True)
    resumed = torch.load(run_dir / "manager.pt", weights_only=True)
    assert all(torch.equal(whole["model"][k], resumed["model"][k]) for k in whole["model"])


def run_bc(runs: Path, data_dir) -> int:
    return corl_main(["bc", "--env", ENV, "--profile", "smoke", "--runs_dir", str(runs), "--data_dir", str(data_dir),
                      "--progress", "false", "--log_every", "50", "--checkpoint_every", "100", "--eval_num_envs", "2"])


def test_a_metrics_row_cut_short_by_a_full_disk_is_dropped_on_resume(data_dir, tmp_path, monkeypatch, capsys):
    assert run_bc(tmp_path / "whole", data_dir) == 0
    real_writerow, rows_written = csv.DictWriter.writerow, []

    def full_in_the_fourth_row(self, row):
        rows_written.append(1)
        if len(rows_written) == 4:  # step 200's row, half written
            self.writer.writerow(list(row.values())[:3])
            no_space()
        return real_writerow(self, row)

    monkeypatch.setattr(csv.DictWriter, "writerow", full_in_the_fourth_row)
    runs = tmp_path / "stopped"
    assert run_bc(runs, data_dir) == 2
    err = capsys.readouterr().err
    assert "while writing metrics.csv; its last row may be cut short" in err
    metrics = runs / ENV / "bc" / "none" / "seed0" / "metrics.csv"
    assert len(metrics.read_text().splitlines()[-1].split(",")) == 3  # the cut row is there
    monkeypatch.undo()
    assert run_bc(runs, data_dir) == 0
    strip = lambda path: [r.rsplit(",", 1)[0] for r in path.read_text().splitlines()]  # noqa: E731 (steps_per_s)
    assert strip(metrics) == strip(tmp_path / "whole" / ENV / "bc" / "none" / "seed0" / "metrics.csv")


def test_truncating_metrics_drops_rows_cut_short(tmp_path):
    run = RunDir(tmp_path, ENV, "bc", seed=0)
    run.path.mkdir(parents=True)
    run.metrics_path.write_text("step,loss,steps_per_s\n50,1.0,3\n100,0.5,3\n150,0.4\n1\n\n")
    run.truncate_metrics(100)
    assert run.metrics_path.read_text().splitlines() == ["step,loss,steps_per_s", "50,1.0,3", "100,0.5,3"]
