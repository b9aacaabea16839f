"""benchmarks/intent_direction.py: the goal references its intent directions are scored against."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import intent_direction  # noqa: E402


def test_antmaze_reference_follows_the_bfs_path_around_the_u():
    goal = intent_direction.goal_reference("antmaze-umaze-v2")
    assert isinstance(goal, intent_direction.AntMazeGoal)
    # umaze's test map: start cell (1, 1) at (0, 0) m, goal cell (3, 1) at (0, 8) m, 4 m cells; the
    # path goes right along row 1, up column 3, back left along row 3
    xy = np.array([[0.0, 0.0], [8.0, 4.0], [4.0, 8.0], [0.5, 8.5]])
    half = np.sqrt(0.5)
    np.testing.assert_allclose(goal.directions(xy), [[1, 0], [0, 1], [-1, 0], [-half, -half]], atol=1e-9)
    assert goal.values(xy).tolist() == [-6.0, -3.0, -1.0, 0.0]  # minus BFS cells to the goal cell


def test_maze2d_reference_points_to_the_next_grid_cell():
    goal = intent_direction.goal_reference("maze2d-umaze-v1")
    assert isinstance(goal, intent_direction.Maze2dGoal)
    # maze2d positions are (row, col); in umaze the goal is (1, 1), reached from (1, 3) going left
    np.testing.assert_allclose(goal.directions(np.array([[1.0, 3.0]])), [[0.0, -1.0]], atol=1e-9)
    values = goal.values(np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]]))
    assert values[0] > values[1] > values[2]


def test_a_task_without_a_maze_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="maze2d and antmaze"):
        intent_direction.goal_reference("halfcheetah-medium-v2")
