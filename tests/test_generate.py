"""The maze2d generator: D4RL's layout, labelling and quirks; determinism; provenance; atomicity."""
from __future__ import annotations

import numpy as np
import pytest

from tasks import generate_dataset, get_task, read_dataset
from tasks.datasets import dataset_provenance, write_dataset

LAYOUT = {"observations": ((4,), np.float32), "actions": ((2,), np.float32), "rewards": ((), np.float32),
          "terminals": ((), np.bool_), "timeouts": ((), np.bool_), "infos/goal": ((2,), np.float32),
          "infos/qpos": ((2,), np.float32), "infos/qvel": ((2,), np.float32)}


def test_layout_matches_d4rl(umaze_small):
    _, data = umaze_small
    assert set(data) == set(LAYOUT)
    for key, (shape, dtype) in LAYOUT.items():
        assert data[key].shape == (6000, *shape), key
        assert data[key].dtype == dtype, key
    assert not data["terminals"].any()  # D4RL's maze2d files have no terminal states
    assert np.all(np.abs(data["actions"]) <= 1.0)


def test_rewards_relabelled_against_the_fixed_goal(umaze_small):
    _, data = umaze_small
    dist = np.linalg.norm(data["observations"][:, :2] - np.array([1.0, 1.0], np.float32), axis=1)
    assert np.array_equal(data["rewards"], (dist <= 0.5).astype(np.float32))
    assert 0 < data["rewards"].mean() < 0.5


def test_timeouts_mark_reached_goals_or_the_time_limit(umaze_small):
    _, data = umaze_small
    limit = get_task("maze2d-umaze-v1").max_episode_steps
    ends = np.flatnonzero(data["timeouts"])
    assert len(ends) > 20
    starts = np.r_[0, ends[:-1] + 1]
    for start, end in zip(starts, ends):
        goal_cell = np.round(data["infos/goal"][end])
        reached = np.linalg.norm(data["observations"][end, :2] - goal_cell) < 0.1
        assert reached or end - start == limit, (start, end)
        # one goal per segment; a new goal is drawn right after the flagged step
        assert np.all(data["infos/goal"][start:end + 1] == data["infos/goal"][end])
    goals = data["infos/goal"]
    assert np.all(np.abs(goals - np.round(goals)) <= 0.1 + 1e-6)


def test_d4rl_stale_observation_after_each_segment(umaze_small):
    _, data = umaze_small
    ends = np.flatnonzero(data["timeouts"][:-1])
    assert np.array_equal(data["observations"][ends + 1], data["observations"][ends])
    inner = np.setdiff1d(np.arange(len(data["rewards"])), ends + 1)
    assert np.allclose(data["observations"][inner, :2], data["infos/qpos"][inner])
    assert not np.allclose(data["observations"][ends + 1, :2], data["infos/qpos"][ends + 1])


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    paths = [generate_dataset("maze2d-medium-v1", out=tmp_path / f"{i}.hdf5", steps=1500, seed=s,
                              show_progress=False) for i, s in enumerate((7, 7, 8))]
    a, b, c = (read_dataset(p) for p in paths)
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert not np.array_equal(a["observations"], c["observations"])


def test_provenance_attributes(umaze_small):
    path, _ = umaze_small
    attrs = dataset_provenance(path)
    assert attrs["env"] == "maze2d-umaze-v1" and attrs["seed"] == 3 and attrs["steps"] == 6000
    assert "D4RL" in attrs["generator"] and attrs["generator_version"] >= 1
    assert {"code_version", "mujoco_version", "created_utc"} <= set(attrs)


def test_refuses_to_overwrite_and_rejects_tiny_sizes(tmp_path):
    out = tmp_path / "d.hdf5"
    generate_dataset("maze2d-umaze-v1", out=out, steps=100, show_progress=False)
    with pytest.raises(FileExistsError, match="--overwrite"):
        generate_dataset("maze2d-umaze-v1", out=out, steps=100, show_progress=False)
    generate_dataset("maze2d-umaze-v1", out=out, steps=200, overwrite=True, show_progress=False)
    assert len(read_dataset(out)["rewards"]) == 200
    with pytest.raises(ValueError, match="at least 2"):
        generate_dataset("maze2d-umaze-v1", out=tmp_path / "e.hdf5", steps=1, show_progress=False)


def test_interrupted_write_leaves_nothing(tmp_path):
    class Exploding:
        def __array__(self, *args, **kwargs):
            raise KeyboardInterrupt("interrupted mid-write")

    out = tmp_path / "partial.hdf5"
    with pytest.raises(KeyboardInterrupt):
        write_dataset(out, {"observations": np.zeros((5, 4), np.float32), "actions": Exploding()}, {})
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temp file
