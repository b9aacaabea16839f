"""benchmarks/antmaze_progress.py (the position recorder, the per-episode maze progress and its table) and
antmaze_paths_figure.py (the paper's Figure 2 from the recorded paths)."""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import antmaze_paths_figure, antmaze_progress  # noqa: E402


class CountingPolicy:
    """Returns zero actions; remembers the calls it got."""

    def __init__(self):
        self.resets, self.observed, self.calls = [], [], 0

    def reset(self, episode_ids):
        self.resets.append(list(episode_ids))

    def observe(self, rewards):
        self.observed.append(list(rewards))

    def __call__(self, obs):
        self.calls += 1
        return np.zeros((len(obs), 8), np.float32)


def test_recorder_keeps_each_episodes_positions_until_its_first_reward():
    inner = CountingPolicy()
    recorder = antmaze_progress.PositionRecorder(inner, episodes=3)
    recorder.reset(np.array([2, 3]))  # the second round of a 2-env evaluation: episode 3 is an extra one
    recorder.reset_info({"goal": np.array([[0.5, 8.5], [9.0, 9.0]])})
    obs = np.zeros((2, 39), np.float32)
    obs[:, :2] = [[1.0, 2.0], [5.0, 6.0]]
    assert recorder(obs).shape == (2, 8)
    recorder.observe(np.array([1.0, 0.0]))  # episode 2 succeeds: nothing after this is recorded
    obs[:, :2] = [[3.0, 4.0], [7.0, 8.0]]
    recorder(obs)
    assert [p.tolist() for p in recorder.paths[2]] == [[1.0, 2.0]]
    assert recorder.paths[0] == recorder.paths[1] == []  # not run in this round
    assert recorder.success.tolist() == [False, False, True]
    assert recorder.goals[2].tolist() == [0.5, 8.5] and recorder.goals[0].tolist() == [0.0, 0.0]
    assert inner.resets == [[2, 3]] and inner.observed == [[1.0, 0.0]] and inner.calls == 2  # all forwarded


def test_progress_counts_bfs_cells_around_the_u_and_metres_to_the_goal():
    maze = antmaze_progress.AntMazeGoal("antmaze-umaze-v2")
    # umaze: start cell (1, 1) at (0, 0) m is 6 BFS cells from the goal cell (3, 1) at (0, 8) m;
    # (8, 0) is cell (1, 3): 4 cells; (8, 8) is (3, 3): 2 cells; (8, 4) is (2, 3): 3 cells
    wanders = [np.array(p, float) for p in [(0, 0), (8, 0), (8, 8), (8, 4)]]
    arrives = [np.array(p, float) for p in [(0, 0), (8, 0), (8, 8), (4, 8), (0.9, 8.0)]]
    goals = np.array([[0.5, 8.5], [0.5, 8.5]])
    result = antmaze_progress.episode_progress([wanders, arrives], goals, np.array([False, True]), maze)
    assert result["per_episode"]["start"] == [6.0, 6.0]
    assert result["per_episode"]["closest"] == [2.0, 0.0]
    assert result["per_episode"]["last"] == [3.0, 0.0]
    # wanders: closest at (8, 8), 7.5 m from (0.5, 8.5); arrives: 0.64 m recorded, a success caps it at 0.5
    assert result["per_episode"]["closest_m"] == [pytest.approx(np.hypot(7.5, 0.5), abs=1e-3), 0.5]
    assert result["progress_cells"] == pytest.approx((4 + 6) / 2)
    assert result["closest_cells"] == pytest.approx(1.0) and result["last_cells"] == pytest.approx(1.5)
    assert result["success_rate"] == 0.5 and result["goal_cell_rate"] == 0.5


def run(intent: str, seed: int, progress: float, algo: str = "bc") -> dict:
    """A replay's result as the tables read it: progress given, other means 0, three episodes' closest
    approaches (10 - progress, 2 and 3 cells: one within NEAR_GOAL_CELLS)."""
    keys = ("success_rate", "goal_cell_rate", "start_cells", "closest_cells", "last_cells", "closest_m")
    return {"algo": algo, "intent": intent, "seed": seed, "progress_cells": progress, **dict.fromkeys(keys, 0.0),
            "per_episode": {"closest": [10.0 - progress, 2.0, 3.0]}}


def test_table_gives_mean_and_sample_std_over_seeds_per_arm():
    table = antmaze_progress.progress_table([run("manager", 0, 2.0), run("none", 1, 3.0), run("none", 0, 1.0)])
    lines = table.splitlines()
    assert len(lines) == 4 and "progress (cells)" in lines[0]
    none_row, manager_row = lines[2].split(" | "), lines[3].split(" | ")
    assert none_row[1:3] == ["none", "0,1"] and manager_row[1:3] == ["manager", "0"]  # none first, seeds sorted
    assert none_row[7] == f"2.00 ± {np.std([1.0, 3.0], ddof=1):.2f}" and manager_row[7] == "2.00 ± 0.00"
    assert none_row[-2:] == ["", " |"] and manager_row[-2:] == ["n/a", "n/a |"]  # both tests need two seeds a side
    assert none_row[-3] == "2 / 6" and manager_row[-3] == "1 / 3"  # closest within 2 cells: one episode a run

    two_seeds = [run("none", 0, 1.0), run("none", 1, 1.2), run("random", 0, 3.0), run("random", 1, 3.5)]
    random_row = antmaze_progress.progress_table(two_seeds).splitlines()[3].split(" | ")
    assert float(random_row[-2]) == pytest.approx(stats.ttest_ind([3.0, 3.5], [1.0, 1.2], equal_var=False).pvalue,
                                                  rel=1e-2)
    assert float(random_row[-1].rstrip(" |")) == pytest.approx(stats.ttest_rel([3.0, 3.5], [1.0, 1.2]).pvalue,
                                                               rel=1e-2)


def test_pooled_gain_pairs_each_worker_and_seed_with_its_own_baseline():
    results = [run("none", 0, 1.0), run("none", 1, 2.0), run("none", 0, 3.0, "td3_bc"),
               run("manager", 0, 2.5), run("manager", 1, 2.2), run("manager", 0, 2.0, "td3_bc"),
               run("manager", 1, 9.0, "td3_bc"),  # no td3_bc baseline on seed 1: not a pair
               run("random", 0, 1.0), run("random", 1, 1.5)]
    lines = antmaze_progress.pooled_gain_table(results).splitlines()
    assert len(lines) == 4 and "sign test p" in lines[0]
    manager, random_arm = lines[2].split(" | "), lines[3].split(" | ")
    gains = np.array([1.5, 0.2, -1.0])  # bc seed 0, bc seed 1, td3_bc seed 0
    assert manager[:3] == ["| manager", "bc,td3_bc", "3"]
    assert manager[3] == f"{gains.mean():.2f} ± {gains.std(ddof=1):.2f}" and manager[4] == "2 / 3"
    assert float(manager[5]) == pytest.approx(stats.ttest_rel([2.5, 2.2, 2.0], [1.0, 2.0, 3.0]).pvalue, rel=1e-2)
    assert float(manager[6].rstrip(" |")) == pytest.approx(stats.binomtest(2, 3).pvalue, rel=1e-2)
    assert random_arm[1:5] == ["bc", "2", "-0.25 ± 0.35", "0 / 2"]  # one pair ties (gain 0), one loses
    assert float(random_arm[6].rstrip(" |")) == pytest.approx(1.0)  # sign test over the one untied pair
    assert antmaze_progress.pooled_gain_table(results[:4]) == ""  # one pair per arm: nothing to pool
    printed = antmaze_progress.tables(results)
    per_worker, pooled = printed.split("\n\n")  # the per-worker table first, the pooled one below
    assert "progress (cells)" in per_worker and pooled == antmaze_progress.pooled_gain_table(results)


def test_recorder_records_where_each_steps_intent_points_beside_the_position():
    def decode(obs):  # (N, 2, 2): the "subgoal" obs[:, 2:4] + 1 and the "reconstruction" obs[:, 2:4] - 1
        return np.stack([obs[:, 2:4] + 1.0, obs[:, 2:4] - 1.0], axis=1)

    recorder = antmaze_progress.PositionRecorder(CountingPolicy(), episodes=2, decode=decode)
    recorder.reset(np.array([0, 1]))
    obs = np.zeros((2, 31), np.float32)
    obs[:, :4] = [[1.0, 2.0, 10.0, 20.0], [3.0, 4.0, 30.0, 40.0]]
    recorder(obs)
    recorder.observe(np.array([0.0, 1.0]))  # episode 1 ends: its row is no longer decoded
    obs[0, :4] = [5.0, 6.0, 50.0, 60.0]
    recorder(obs)
    assert [p.tolist() for p in recorder.paths[0]] == [[1.0, 2.0], [5.0, 6.0]]
    assert [d.tolist() for d in recorder.decoded[0]] == [[[11.0, 21.0], [9.0, 19.0]], [[51.0, 61.0], [49.0, 59.0]]]
    assert [d.tolist() for d in recorder.decoded[1]] == [[[31.0, 41.0], [29.0, 39.0]]]


def test_moves_compare_each_step_with_the_same_episodes_position_k_steps_later():
    # umaze: (0, 0) is 6 BFS cells from the goal cell, (4, 0) 5, (8, 0) 4; two episodes, k = 2
    run = {"env": "antmaze-umaze-v2", "k": 2, "subgoals": np.zeros((0, 2)), "reconstructions": np.zeros((0, 2)),
           "episode": np.array([0, 0, 0, 1, 1, 1]),
           "positions": np.array([[0.0, 0.0], [4.0, 0.0], [8.0, 0.0], [8.0, 0.0], [0.0, 0.0], [0.0, 0.0]])}
    moves = antmaze_paths_figure.directions(run)["moves"]  # pairs (0 -> 8 m: nearer) and (8 -> 0 m: farther)
    assert moves == {"steps": 2, "in_wall": 0.0, "nearer": 0.5, "same": 0.0, "farther": 0.5}


def test_containing_cell_follows_the_wall_boxes_not_d4rls_shifted_index():
    umaze = antmaze_progress.AntMazeGoal("antmaze-umaze-v2").map  # cell (i, j) centred at (4 j - 4, 4 i - 4)
    assert umaze.containing_cell((1.9, 0.0)) == (1, 1) and umaze.containing_cell((2.1, 0.0)) == (1, 2)
    assert umaze.xy_to_rowcol((1.9, 0.0)) == umaze.xy_to_rowcol((2.1, 0.0)) == (1, 1)  # D4RL's index: half a cell off
    assert umaze.containing_cell((0.0, 4.5)) == (2, 1) and not umaze.is_free((2, 1))  # inside the U's middle wall


class LinearManager:
    """encode: the first two observation entries doubled; decode: a latent z -> observation (z / 2, 7)."""

    device = torch.device("cpu")

    def encode(self, obs):
        return 2.0 * torch.as_tensor(obs[:, :2], dtype=torch.float32)

    def decode(self, z):
        return torch.cat([z / 2.0, torch.full((len(z), 1), 7.0)], dim=1)


def test_decoded_positions_are_decode_of_encode_plus_intent_and_of_encode_alone():
    obs = np.array([[1.0, 2.0, 0.5, -4.0, 0.2, 0.6]])  # obs_dim 4, then the intent g = (0.2, 0.6)
    decoded = antmaze_progress.decoded_positions(LinearManager(), obs_dim=4)(obs)  # (1, 2, 2)
    assert decoded[:, 0] == pytest.approx(np.array([[1.0 + 0.1, 2.0 + 0.3]]))  # (2 s + g) / 2
    assert decoded[:, 1] == pytest.approx(np.array([[1.0, 2.0]]))  # 2 s / 2: this decoder reconstructs exactly


def test_paths_file_round_trips_and_draws_one_panel_per_run(tmp_path):
    recorder = antmaze_progress.PositionRecorder(CountingPolicy(), episodes=2)
    recorder.paths = [[np.array([0.0, 0.0]), np.array([4.0, 0.0])], [np.array([0.0, 0.0])]]
    recorder.decoded = [[np.array([[4.0, 0.5], [0.0, 0.0]]), np.array([[5.0, 1.0], [8.0, 0.0]])],
                        [np.array([[0.0, 4.5], [0.0, 0.0]])]]  # (subgoal, reconstruction) per step
    recorder.goals = np.array([[0.5, 8.5], [0.7, 8.2]])
    recorder.success = np.array([True, False])
    result = {"env": "antmaze-umaze-v2", "algo": "bc", "intent": "manager", "seed": 3}
    antmaze_progress.save_paths(tmp_path / "bc_manager_seed3.npz", result, recorder, k=8)
    run = antmaze_paths_figure.load_paths(tmp_path / "bc_manager_seed3.npz")
    assert [run[key] for key in ("env", "algo", "intent", "seed", "k")] == ["antmaze-umaze-v2", "bc", "manager", 3, 8]
    assert run["positions"].tolist() == [[0.0, 0.0], [4.0, 0.0], [0.0, 0.0]] and run["episode"].tolist() == [0, 0, 1]
    assert run["subgoals"].tolist() == [[4.0, 0.5], [5.0, 1.0], [0.0, 4.5]]
    assert run["reconstructions"].tolist() == [[0.0, 0.0], [8.0, 0.0], [0.0, 0.0]]
    # umaze, 4 m cells centred on (4 j - 4, 4 i - 4): the ant at (0, 0) is 6 BFS cells from the goal cell,
    # its subgoal (4, 0.5) 5 (nearer); at (4, 0) it is 5 cells away and so is (5, 1) (as near);
    # (0, 4.5) is inside the U's middle wall, cell (2, 1)
    where = antmaze_paths_figure.directions(run)
    assert where["intents"] == {"steps": 3, "in_wall": pytest.approx(1 / 3), "nearer": 0.5, "same": 0.5, "farther": 0.0}
    assert where["k"] == 8 and where["moves"]["steps"] == 0  # no episode is longer than 8 steps
    # the decoder puts the ant at (4, 0) 4 m ahead, in the cell at 4 BFS cells: one of three nearer
    assert where["reconstructions"] == {"steps": 3, "in_wall": 0.0, "nearer": pytest.approx(1 / 3),
                                        "same": pytest.approx(2 / 3), "farther": 0.0}
    assert run["goals"] == pytest.approx(recorder.goals) and run["success"].tolist() == [True, False]
    assert antmaze_paths_figure.episode_steps(run, 1).tolist() == [2]
    with pytest.raises(ValueError, match="episode 5 was not recorded"):
        antmaze_paths_figure.episode_steps(run, 5)

    without = antmaze_progress.PositionRecorder(CountingPolicy(), episodes=1)  # no Manager: no subgoals saved
    without.paths = [[np.array([0.0, 0.0])]]
    antmaze_progress.save_paths(tmp_path / "bc_none_seed3.npz", {**result, "intent": "none"}, without)
    no_subgoals = antmaze_paths_figure.load_paths(tmp_path / "bc_none_seed3.npz")
    assert no_subgoals["subgoals"].shape == no_subgoals["reconstructions"].shape == (0, 2)
    assert antmaze_paths_figure.directions(no_subgoals)["intents"] is None

    np.savez(tmp_path / "other.npz", positions=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="lacks algo, env, episode"):
        antmaze_paths_figure.load_paths(tmp_path / "other.npz")
    with pytest.raises(SystemExit):  # argparse's error: the file is named, and how to write one
        antmaze_paths_figure.main([str(tmp_path / "absent.npz")])

    out = tmp_path / "figure.png"
    assert antmaze_paths_figure.main([str(tmp_path / "bc_none_seed3.npz"), str(tmp_path / "bc_manager_seed3.npz"),
                                      "--out", str(out)]) == 0
    image = plt.imread(out)  # (height, width, channels): two panels side by side
    assert image.shape[1] > 1.8 * image.shape[0]

    runs = [antmaze_paths_figure.load_paths(tmp_path / name) for name in ("bc_none_seed3.npz", "bc_manager_seed3.npz")]
    lines = antmaze_paths_figure.directions_table(runs, [antmaze_paths_figure.directions(r) for r in runs]).splitlines()
    assert len(lines) == 4 and "decoded intents nearer" in lines[0]
    assert lines[2].split(" | ")[2:5] == ["none", "3", "0.000 ± 0.000"]  # one seed: no spread; no intents: blank
    assert lines[2].endswith("|  |  |  |  |  |")  # no intents, no decoder
    assert lines[3].split(" | ")[7:12] == ["0.500 ± 0.000", "0.000 ± 0.000", "0.333 ± 0.000", "0.333 ± 0.000",
                                           "0.000 ± 0.000 |"]
