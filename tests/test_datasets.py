"""Dataset loading: search order, generate/download fallbacks, clear errors, D4RL's views."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import common.provenance as provenance
import tasks.datasets as datasets
from tasks import (DatasetError, DatasetNotFoundError, find_dataset, get_task, load_dataset,
                   qlearning_dataset, read_dataset, trajectories)
from tasks.registry import TASKS

UMAZE = "maze2d-umaze-v1"
FILE = get_task(UMAZE).dataset_file


def tiny_dataset(n=10, timeouts=(), terminals=()):
    """observations[i] = (i, i, i, i) so alignment is visible; rewards[i] = 10 i."""
    data = {"observations": np.repeat(np.arange(n, dtype=np.float32)[:, None], 4, axis=1),
            "actions": np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float32),
            "rewards": 10 * np.arange(n, dtype=np.float32),
            "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}
    data["timeouts"][list(timeouts)] = True
    data["terminals"][list(terminals)] = True
    return data


def write_h5(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)
    return path


def test_round_trip(tmp_path, umaze_small):
    src, data = umaze_small
    copy = write_h5(tmp_path / "copy.hdf5", data)
    again = read_dataset(copy, get_task(UMAZE))
    assert set(again) == set(data)
    for k in data:
        assert np.array_equal(again[k], data[k]) and again[k].dtype == data[k].dtype


def test_search_order_data_dir_then_env_then_d4rl_cache_then_local(tmp_path, monkeypatch):
    local = datasets.LOCAL_DATA_DIR
    cache = tmp_path / "home" / ".d4rl" / "datasets"
    env_dir, cli_dir = tmp_path / "envdir", tmp_path / "cli"
    for folder in (local, cache, env_dir, cli_dir):
        write_h5(folder / FILE, tiny_dataset())
    monkeypatch.setenv("D4RL_DATASET_DIR", str(env_dir))
    assert find_dataset(UMAZE, cli_dir) == cli_dir / FILE
    assert find_dataset(UMAZE) == env_dir / FILE
    monkeypatch.delenv("D4RL_DATASET_DIR")
    assert find_dataset(UMAZE) == cache / FILE  # real D4RL files are found in D4RL's cache
    os.remove(cache / FILE)
    assert find_dataset(UMAZE) == local / FILE


def test_missing_dataset_is_generated_into_data_dir_not_d4rl_cache(tmp_path, monkeypatch):
    spec = get_task(UMAZE)
    small = dataclasses.replace(spec, default_dataset_steps=500)
    monkeypatch.setitem(TASKS, UMAZE, small)
    data = load_dataset(UMAZE, show_progress=False)
    assert len(data["observations"]) == 500
    assert (datasets.LOCAL_DATA_DIR / FILE).is_file()
    assert not (tmp_path / "home" / ".d4rl").exists()
    os.remove(datasets.LOCAL_DATA_DIR / FILE)
    data2 = load_dataset(UMAZE, data_dir=tmp_path / "mine", show_progress=False)
    assert (tmp_path / "mine" / FILE).is_file() and len(data2["rewards"]) == 500


def making_elsewhere(dest_dir, copy_from=None):
    """Another process making the dataset of dest_dir: it holds the lock load_dataset takes, then
    writes the file (a copy of `copy_from`; none: it dies without one) and ends."""
    code = ("import shutil, sys, time; from pathlib import Path; from common.file_lock import try_lock; "
            "lock = Path(sys.argv[1]) / ('.' + sys.argv[2] + '.lock'); assert try_lock(lock) is not None; "
            "print('held', flush=True); time.sleep(1.0); "
            "sys.argv[3] and shutil.copy(sys.argv[3], Path(sys.argv[1]) / sys.argv[2])")
    holder = subprocess.Popen([sys.executable, "-c", code, str(dest_dir), FILE, str(copy_from or "")],
                              cwd=os.path.dirname(os.path.dirname(__file__)), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_dataset_being_made_elsewhere_is_waited_for_and_read_not_made_twice(tmp_path, umaze_small, monkeypatch,
                                                                              capsys):
    def made_twice(*args, **kwargs):
        raise AssertionError("the dataset was generated a second time")

    monkeypatch.setattr(datasets, "generate_dataset", made_twice)
    holder = making_elsewhere(tmp_path / "data", copy_from=umaze_small[0])
    data = load_dataset(UMAZE, data_dir=tmp_path / "data", show_progress=False)
    holder.wait()
    holder.stdout.close()
    assert len(data["observations"]) == len(umaze_small[1]["observations"])
    assert f"waiting for pid {holder.pid} on host" in capsys.readouterr().err


def test_a_dataset_maker_that_dies_is_replaced_by_the_waiting_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(TASKS, UMAZE, dataclasses.replace(get_task(UMAZE), default_dataset_steps=500))
    holder = making_elsewhere(tmp_path / "data")  # ends without writing the file
    data = load_dataset(UMAZE, data_dir=tmp_path / "data", show_progress=False)
    holder.wait()
    holder.stdout.close()
    assert len(data["observations"]) == 500 and (tmp_path / "data" / FILE).is_file()
    assert f"waiting for pid {holder.pid}" in capsys.readouterr().err


def test_download_fallback_and_its_error(tmp_path, monkeypatch):
    served = write_h5(tmp_path / "server" / FILE, tiny_dataset(12))
    spec = dataclasses.replace(get_task(UMAZE), generate=None, dataset_url=served.as_uri())
    monkeypatch.setitem(TASKS, UMAZE, spec)
    data = load_dataset(UMAZE, data_dir=tmp_path / "dl")
    assert len(data["rewards"]) == 12 and (tmp_path / "dl" / FILE).is_file()

    monkeypatch.setitem(TASKS, UMAZE, dataclasses.replace(spec, dataset_url=(tmp_path / "nope.hdf5").as_uri()))
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(UMAZE, data_dir=tmp_path / "dl2")
    msg = str(err.value)
    assert FILE in msg and str(tmp_path / "dl2") in msg and ".d4rl" in msg and "download" in msg
    assert not (tmp_path / "dl2" / FILE).exists()  # no half-downloaded file


def test_not_found_without_generator_or_url(monkeypatch, tmp_path):
    monkeypatch.setitem(TASKS, UMAZE, dataclasses.replace(get_task(UMAZE), generate=None, dataset_url=None))
    with pytest.raises(DatasetNotFoundError, match=f"put {FILE} in one of"):
        load_dataset(UMAZE, data_dir=tmp_path)


def test_truncated_file_names_the_file(tmp_path, umaze_small):
    src, _ = umaze_small
    raw = src.read_bytes()
    bad = tmp_path / FILE
    bad.write_bytes(raw[: len(raw) // 3])
    with pytest.raises(DatasetError) as err:
        read_dataset(bad, get_task(UMAZE))
    assert str(bad) in str(err.value) and "truncated or corrupt" in str(err.value)


def test_garbage_file_names_the_file(tmp_path):
    bad = tmp_path / FILE
    bad.write_text("this is not HDF5")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        load_dataset(UMAZE, data_dir=tmp_path)


def test_missing_key_is_named(tmp_path):
    data = tiny_dataset()
    del data["actions"]
    path = write_h5(tmp_path / FILE, data)
    with pytest.raises(DatasetError, match="no 'actions' array"):
        read_dataset(path, get_task(UMAZE))


@pytest.mark.parametrize("key, bad", [("observations", np.zeros((10, 17), np.float32)),
                                      ("actions", np.zeros((10, 8), np.float32)),
                                      ("rewards", np.zeros(9, np.float32)),
                                      ("timeouts", np.zeros((10, 2), bool))])
def test_misshaped_key_is_named(tmp_path, key, bad):
    data = tiny_dataset()
    data[key] = bad
    path = write_h5(tmp_path / FILE, data)
    with pytest.raises(DatasetError) as err:
        read_dataset(path, get_task(UMAZE))
    assert f"'{key}' has shape {bad.shape}" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize("key, rows, shown", [("observations", (3,), "1 rows (3)"),
                                               ("actions", (0, 2, 4, 6, 8, 9), "6 rows (0, 2, 4, 6, 8, ...)"),
                                               ("rewards", (9,), "1 rows (9)")])
def test_nan_or_inf_in_what_learners_read_is_named_with_its_rows(tmp_path, key, rows, shown):
    """Not a diverged loss thousands of updates later: the file, the array and its first bad rows."""
    data = tiny_dataset()
    data[key] = data[key].copy()
    for i, row in enumerate(rows):
        data[key][row] = np.nan if i % 2 else np.inf
    path = write_h5(tmp_path / FILE, data)
    with pytest.raises(DatasetError, match="regenerate it") as err:
        read_dataset(path, get_task(UMAZE))
    assert f"{path}: array '{key}' holds NaN or inf in {shown}" in str(err.value)


def test_column_rewards_are_flattened_like_d4rl(tmp_path):
    data = tiny_dataset()
    data["rewards"] = data["rewards"][:, None]
    out = read_dataset(write_h5(tmp_path / FILE, data), get_task(UMAZE))
    assert out["rewards"].shape == (10,)


def test_qlearning_dataset_semantics():
    data = tiny_dataset(10, timeouts=(3, 7), terminals=(5,))
    q = qlearning_dataset(data)
    kept = [0, 1, 2, 4, 5, 6, 8]  # timeouts 3 and 7 dropped, and the last row (no successor)
    assert q["observations"][:, 0].tolist() == kept
    assert q["next_observations"][:, 0].tolist() == [k + 1 for k in kept]
    assert q["rewards"].tolist() == [10 * k for k in kept]
    assert q["actions"][:, 1].tolist() == [-k for k in kept]
    assert q["terminals"].tolist() == [k == 5 for k in kept]
    assert set(q) == {"observations", "actions", "next_observations", "rewards", "terminals"}
    q_all = qlearning_dataset(data, terminate_on_end=True)
    assert q_all["observations"][:, 0].tolist() == list(range(9))


def test_qlearning_dataset_without_timeouts_counts_steps_like_d4rl():
    data = tiny_dataset(10, terminals=(1,))
    del data["timeouts"]
    q = qlearning_dataset(data, max_episode_steps=3)
    # episodes restart after the terminal at 1; each 3rd step of an episode is a timeout: 4 and 7
    assert q["observations"][:, 0].tolist() == [0, 1, 2, 3, 5, 6, 8]
    with pytest.raises(DatasetError, match="max_episode_steps"):
        qlearning_dataset(data)


def test_trajectories_split_on_terminals_and_timeouts():
    data = tiny_dataset(10, timeouts=(3,), terminals=(6,))
    data["infos/goal"] = np.arange(20, dtype=np.float32).reshape(10, 2)
    eps = trajectories(data)
    assert [ep["observations"][:, 0].tolist() for ep in eps] == [[0, 1, 2, 3], [4, 5, 6]]
    assert eps[1]["infos/goal"].shape == (3, 2) and eps[1]["terminals"].tolist() == [False, False, True]
    eps_all = trajectories(data, drop_incomplete=False)
    assert [len(ep["rewards"]) for ep in eps_all] == [4, 3, 3]


def test_qlearning_and_trajectory_counts_on_generated_data(umaze_small):
    _, data = umaze_small
    n, timeouts = len(data["rewards"]), data["timeouts"]
    q = qlearning_dataset(data)
    assert len(q["rewards"]) == n - 1 - timeouts[:-1].sum()
    eps = trajectories(data, drop_incomplete=False)
    assert sum(len(ep["rewards"]) for ep in eps) == n
    assert len(trajectories(data)) == timeouts.sum()


def _fake_git(calls, status=""):
    """subprocess.run for git: rev-parse answers commit<n> (n: how many times HEAD was read), status `status`."""
    def run(cmd, **kwargs):
        calls.append(cmd)
        heads = sum("rev-parse" in c for c in calls)
        out = f"commit{heads}\n" if "rev-parse" in cmd else status
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")
    return run


def test_code_version_is_read_once_per_process(monkeypatch):
    """A long run reports the commit it started with, even if HEAD moves while it trains."""
    datasets.code_version.cache_clear()
    calls = []
    monkeypatch.setattr(provenance.subprocess, "run", _fake_git(calls))
    try:
        assert datasets.code_version() == "commit1"
        assert datasets.code_version() == "commit1" and len(calls) == 2  # HEAD "moved": still the first
    finally:
        datasets.code_version.cache_clear()


def test_code_version_marks_an_edited_working_tree(monkeypatch):
    """Tracked files that differ from HEAD: the run did not run the commit's code, and says so."""
    datasets.code_version.cache_clear()
    monkeypatch.setattr(provenance.subprocess, "run", _fake_git([], status=" M common/errors.py\n"))
    try:
        assert datasets.code_version() == "commit1+dirty"
    finally:
        datasets.code_version.cache_clear()


def test_git_state_of_a_real_repository(tmp_path):
    """git_commit / git_dirty on a fresh repository: clean after a commit, dirty after an edit of a
    tracked file, not after a new untracked one; outside a repository both are None."""
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)
    assert provenance.git_commit(tmp_path) is None and provenance.git_dirty(tmp_path) is None
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    assert len(provenance.git_commit(tmp_path)) == 40 and provenance.git_dirty(tmp_path) is False
    assert provenance.git_commit(tmp_path).startswith(provenance.git_commit(tmp_path, short=True))
    (tmp_path / "b.py").write_text("untracked\n")
    assert provenance.git_dirty(tmp_path) is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert provenance.git_dirty(tmp_path) is True
