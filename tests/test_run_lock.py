"""One process per run folder: a second process training (or evaluating) into a run folder that
another process is using stops at once with an error naming the first, before it reads any data;
the lock dies with its process, survives --overwrite and nests within a process. (The grid waits for
a run started by hand: tests/test_runs_grid.py.)"""
from __future__ import annotations

import contextlib
import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.file_lock import is_locked
from common.run_dir import RUN_LOCK_NAME, RunDir, RunInUse
from runs.claims import claimed_elsewhere, in_training

ROOT = Path(__file__).resolve().parents[1]
ENV = "maze2d-umaze-v1"


@contextlib.contextmanager
def held_elsewhere(run: RunDir):
    """Another process holding the run folder's claim, as a training process would."""
    code = ("import sys, time; from pathlib import Path; from common.run_dir import RUN_LOCK_NAME, RunClaim; "
            "claim = RunClaim(Path(sys.argv[1]) / RUN_LOCK_NAME, Path(sys.argv[1])); "
            "print('held', flush=True); time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run.path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def make_run(root: Path, what: str = "bc/none", seed: int = 0, env: str = ENV) -> RunDir:
    return RunDir(root, env, what.split("/"), seed)


def test_a_second_process_is_refused_naming_the_first_and_the_lock_dies_with_it(tmp_path):
    run = make_run(tmp_path)
    with held_elsewhere(run) as holder:
        assert is_locked(run.lock_path) and in_training(run.path) and claimed_elsewhere(run.path)
        with pytest.raises(RunInUse) as refused:
            run.claim()
        message = str(refused.value)
        assert str(run.path) in message and f"pid {holder.pid}" in message and "python -c" in message
        assert "Ctrl-C" in message and "--runs-dir" in message
    # killed without releasing anything: no stale lock
    assert not is_locked(run.lock_path)
    with run.claim():
        assert is_locked(run.lock_path)
        assert json.loads(run.lock_path.read_text())["pid"] != holder.pid  # names its new holder
    assert not is_locked(run.lock_path)


def test_claims_nest_within_a_process_and_end_with_the_last_or_with_the_object(tmp_path):
    run = make_run(tmp_path)
    outer, inner = run.claim(), run.claim()  # a run resumed in the same process (tests, notebooks)
    outer.release()
    assert is_locked(run.lock_path)
    inner.release()
    inner.release()  # releasing twice is harmless and releases nothing more
    assert not is_locked(run.lock_path)
    forgotten = run.claim()
    assert is_locked(run.lock_path)
    del forgotten
    gc.collect()
    assert not is_locked(run.lock_path)


def test_overwrite_clears_a_finished_run_but_keeps_its_lock_files(tmp_path):
    run = make_run(tmp_path)
    with run.claim():
        run.start({"a": 1})
        run.log_metrics({"step": 1, "loss": 0.5})
        (run.path / "snapshots").mkdir()
        (run.path / "snapshots" / "manager_step0000100.pt").write_bytes(b"x")
        (run.path / ".grid.lock").write_text("{}")
        run.finish({"normalized_score": 1.0})
        run.start({"a": 2}, overwrite=True)
        assert sorted(p.name for p in run.path.iterdir()) == [".grid.lock", RUN_LOCK_NAME, "config.yaml"]
        # the lock this process holds is the folder's lock still: another process cannot take it
        other = subprocess.run([sys.executable, "-c", "import sys; from common.run_dir import RunDir; "
                                "RunDir(sys.argv[1], sys.argv[2], ['bc', 'none'], 0).claim()", str(tmp_path), ENV],
                               cwd=ROOT, capture_output=True, text=True)
        assert other.returncode != 0 and "RunInUse" in other.stderr and "is in use by pid" in other.stderr


def test_a_worker_on_a_run_in_use_stops_before_reading_data(tmp_path, capsys):
    from corl.__main__ import main as corl_main

    run = make_run(tmp_path / "runs", "bc/random")
    with held_elsewhere(run) as holder:
        # no dataset exists under --data_dir: the refusal comes before any data is read or generated
        assert corl_main(["bc", "--env", ENV, "--intent", "random", "--runs_dir", str(tmp_path / "runs"),
                          "--data_dir", str(tmp_path / "no_data"), "--profile", "smoke", "--progress", "false"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {run.path} is in use by pid {holder.pid}") and "Traceback" not in err
    assert not (tmp_path / "no_data").exists() and sorted(p.name for p in run.path.iterdir()) == [RUN_LOCK_NAME]


def test_a_manager_run_in_use_is_refused_single_and_stacked(tmp_path, capsys):
    from manager.__main__ import main as manager_main

    runs = tmp_path / "runs"
    common_args = ["--env", ENV, "--mode", "manager", "--profile", "smoke", "--runs-dir", str(runs),
                   "--data-dir", str(tmp_path / "no_data"), "--no-progress"]
    held = make_run(runs, "manager", seed=1)
    free = make_run(runs, "manager", seed=0)
    with held_elsewhere(held) as holder:
        assert manager_main(["train", *common_args, "--seed", "1"]) == 2
        assert capsys.readouterr().err.startswith(f"error: {held.path} is in use by pid {holder.pid}")
        assert manager_main(["train", *common_args, "--seeds", "0,1"]) == 2
        assert capsys.readouterr().err.startswith(f"error: {held.path} is in use by pid {holder.pid}")
        assert not is_locked(free.lock_path)  # the stacked call let go of the seed it had claimed
    assert not (tmp_path / "no_data").exists()


def test_without_flock_every_lock_is_granted(tmp_path, monkeypatch):
    """Windows has no fcntl: runs work, unguarded (common/file_lock.py's docstring)."""
    import common.file_lock as file_lock

    monkeypatch.setattr(file_lock, "fcntl", None)
    run = make_run(tmp_path)
    with run.claim():
        assert not is_locked(run.lock_path) and json.loads(run.lock_path.read_text())["pid"] > 0
        with file_lock.waiting_lock(tmp_path / ".data.lock", on_wait=lambda holder: pytest.fail(holder)):
            pass


def test_a_file_system_without_flock_warns_and_grants(tmp_path, monkeypatch):
    import errno

    import common.file_lock as file_lock

    def no_locks(fd, flags):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(file_lock.fcntl, "flock", no_locks)
    monkeypatch.setattr(file_lock, "_UNSUPPORTED_SEEN", set())
    run = make_run(tmp_path)
    with pytest.warns(RuntimeWarning, match="no file locks on the file system of .*No locks available"):
        with run.claim():
            assert not is_locked(run.lock_path)


def test_a_momentary_probe_does_not_refuse_a_claim(tmp_path):
    """is_locked takes a shared lock for an instant; a claim taken in that instant retries, not fails."""
    import fcntl
    import os
    import threading

    run = make_run(tmp_path)
    run.path.mkdir(parents=True)
    probe = os.open(run.lock_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(probe, fcntl.LOCK_SH)
    threading.Timer(0.03, os.close, (probe,)).start()
    with run.claim():
        assert is_locked(run.lock_path)
