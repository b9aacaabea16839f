"""Maze layouts of D4RL's maze2d tasks and their cell grids.

The strings are D4RL's (d4rl/pointmaze/maze_model.py), one row per list entry.
Row index i and column index j of a cell are also its (x, y) qpos coordinates:
the particle body sits at world (1.2, 1.2), walls at world (i + 1, j + 1), so a
free cell (i, j) spans qpos [i - 0.6, i + 0.2] x [j - 0.6, j + 0.2] for the
sphere's centre (D4RL's -0.2 offset, kept on purpose).
"""
from __future__ import annotations

import numpy as np

WALL, EMPTY, GOAL = "#", "O", "G"

U_MAZE = [
    "#####",
    "#GOO#",
    "###O#",
    "#OOO#",
    "#####",
]

MEDIUM_MAZE = [
    "########",
    "#OO##OO#",
    "#OO#OOO#",
    "##OOO###",
    "#OO#OOO#",
    "#O#OO#O#",
    "#OOO#OG#",
    "########",
]

LARGE_MAZE = [
    "############",
    "#OOOO#OOOOO#",
    "#O##O#O#O#O#",
    "#OOOOOO#OOO#",
    "#O####O###O#",
    "#OO#O#OOOOO#",
    "##O#O#O#O###",
    "#OO#OOO#OGO#",
    "############",
]

LAYOUTS = {"umaze": U_MAZE, "medium": MEDIUM_MAZE, "large": LARGE_MAZE}


class MazeGrid:
    """A parsed maze: wall mask, free cells and the goal cell."""

    def __init__(self, rows: list[str]):
        if len({len(r) for r in rows}) != 1:
            raise ValueError("maze rows must all have the same length")
        unknown = set("".join(rows)) - {WALL, EMPTY, GOAL}
        if unknown:
            raise ValueError(f"unknown maze tiles {sorted(unknown)}; use '#', 'O' or 'G'")
        self.rows = list(rows)
        self.walls = np.array([[c == WALL for c in r] for r in rows])  # (n_rows, n_cols)
        goals = [(i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c == GOAL]
        if len(goals) != 1:
            raise ValueError(f"a maze needs exactly one 'G' cell, found {len(goals)}")
        self.goal_cell: tuple[int, int] = goals[0]
        empty = sorted((i, j) for i, r in enumerate(rows) for j, c in enumerate(r) if c == EMPTY)
        # D4RL's reset and random-goal set: the sorted empty cells, then the goal cell.
        self.empty_and_goal_cells: list[tuple[int, int]] = empty + [self.goal_cell]

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape

    def is_free(self, cell: tuple[int, int]) -> bool:
        i, j = cell
        return 0 <= i < self.shape[0] and 0 <= j < self.shape[1] and not self.walls[i, j]

    def wall_cells(self) -> list[tuple[int, int]]:
        return [tuple(c) for c in np.argwhere(self.walls)]
