"""The antmaze maps and D4RL's maze geometry (d4rl/locomotion/maze_env.py).

Maps are D4RL's lists written as strings, one row per entry: '#' wall (1), 'O' free (0), 'R' the
reset cell ('r'), 'G' a goal cell ('g'). Row i, column j. Per maze there are two maps:
- the *training* map (U_MAZE, BIG_MAZE, HARDEST_MAZE, ULTRA_MAZE) used to generate the dataset:
  its G cells are the hand-picked goals of the "play" datasets;
- the *test* map (U_MAZE_TEST, ... ; the map of every registered antmaze env): one G cell, the
  evaluation goal.

Geometry, with maze_size_scaling s = 4 and the reset cell R = (1, 1) in every map used here:
- cell (i, j) is centred at x = s j - s, y = s i - s (the reset cell is the origin), so x follows
  the column and y the row; walls are boxes of half-size (s/2, s/2, 1) centred at height 1;
- D4RL maps a position to a cell with int(1 + y / s), int(1 + x / s) after clamping x, y to
  >= 1e-4: the cell *index* changes half a cell away from the wall geometry (cell (i, j) spans
  [s(i-1), s i) in y), a quirk of D4RL's controller kept here;
- the TAP fork (ZhengyaoJiang/d4rl), which made the ultra maze and its datasets, changed both
  mappings: position -> cell int((y + s + s/4) / s), cell -> position shifted by -s/8 and its
  noise by another -s/8. Ultra uses the fork's geometry; the D4RL mazes use D4RL's.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property

import numpy as np

WALL, FREE, RESET, GOAL = "#", "O", "R", "G"
MAZE_SIZE_SCALING = 4.0
MAZE_HEIGHT = 0.5

U_MAZE = [
    "#####",
    "#ROO#",
    "###O#",
    "#GOO#",
    "#####",
]
BIG_MAZE = [
    "########",
    "#RO##OO#",
    "#OO#OOG#",
    "##OOO###",
    "#OO#OOO#",
    "#G#OO#O#",
    "#OOO#GO#",
    "########",
]
HARDEST_MAZE = [
    "############",
    "#ROOO#GOOOO#",
    "#O##O#O#O#O#",
    "#OOOOGO#OOG#",
    "#O####O###O#",
    "#OG#O#OOOOO#",
    "##O#O#O#O###",
    "#OO#GOG#OGO#",
    "############",
]
# TAP fork: note the two openings in the bottom wall row (columns 7 and 9), as in the fork.
ULTRA_MAZE = [
    "################",
    "#ROOGOOO#OOGOOG#",
    "#O###G#O#G##O#O#",
    "#O###O#GOOO#O#O#",
    "#OOG#O##O###G#O#",
    "#G#OOO#GOOGOOOG#",
    "#OOO#GOO#O###O##",
    "#O#G###O#OOG#O##",
    "#GOOOOOG#O#OOGO#",
    "##O##G#OOO####O#",
    "##O#OO#O#GOOOOG#",
    "#######O#O######",
]

U_MAZE_TEST = [
    "#####",
    "#ROO#",
    "###O#",
    "#GOO#",
    "#####",
]
BIG_MAZE_TEST = [
    "########",
    "#RO##OO#",
    "#OO#OOO#",
    "##OOO###",
    "#OO#OOO#",
    "#O#OO#O#",
    "#OOO#OG#",
    "########",
]
HARDEST_MAZE_TEST = [
    "############",
    "#ROOO#OOOOO#",
    "#O##O#O#O#O#",
    "#OOOOOO#OOO#",
    "#O####O###O#",
    "#OO#O#OOOOO#",
    "##O#O#O#O###",
    "#OO#OOO#OGO#",
    "############",
]
ULTRA_MAZE_TEST = [
    "################",
    "#ROOOOOO#OOOOOO#",
    "#O###O#O#O##O#O#",
    "#O###O#OOOO#O#O#",
    "#OOO#O##O###O#O#",
    "#O#OOO#OOOOOOOO#",
    "#OOO#OOO#O###O##",
    "#O#O###O#OOO#O##",
    "#OOOOOOO#O#OOOO#",
    "##O##O#OOO####O#",
    "##O#OO#O#OOOOOG#",
    "################",
]

# maze name: (training map, test map, TAP fork geometry)
MAZES = {
    "umaze": (U_MAZE, U_MAZE_TEST, False),
    "medium": (BIG_MAZE, BIG_MAZE_TEST, False),
    "large": (HARDEST_MAZE, HARDEST_MAZE_TEST, False),
    "ultra": (ULTRA_MAZE, ULTRA_MAZE_TEST, True),
}

# D4RL's BFS neighbour order: left, right, down, up as (d_row, d_col).
BFS_MOVES = ((0, -1), (0, 1), (1, 0), (-1, 0))


@dataclass(frozen=True)
class MazeMap:
    """One map with D4RL's (or the TAP fork's) cell <-> position conversions and samplers.

    Random draws take a numpy Generator (D4RL used the global np.random); the formulas are D4RL's.
    """

    rows: tuple[str, ...]
    tap_geometry: bool = False
    scaling: float = MAZE_SIZE_SCALING

    def __post_init__(self):
        if len({len(r) for r in self.rows}) != 1:
            raise ValueError("maze rows must all have the same length")
        unknown = set("".join(self.rows)) - {WALL, FREE, RESET, GOAL}
        if unknown:
            raise ValueError(f"unknown maze tiles {sorted(unknown)}; use '#', 'O', 'R' or 'G'")
        if sum(r.count(RESET) for r in self.rows) != 1:
            raise ValueError("a maze needs exactly one 'R' cell")

    @classmethod
    def of(cls, rows, tap_geometry: bool = False) -> "MazeMap":
        return cls(tuple(rows), tap_geometry)

    # --- cells ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), len(self.rows[0])

    @cached_property
    def walls(self) -> np.ndarray:
        return np.array([[c == WALL for c in r] for r in self.rows])  # (n_rows, n_cols)

    @cached_property
    def reset_cell(self) -> tuple[int, int]:
        return next((i, j) for i, r in enumerate(self.rows) for j, c in enumerate(r) if c == RESET)

    @cached_property
    def free_cells(self) -> list[tuple[int, int]]:
        """Cells that are 0, 'r' or 'g' in D4RL's map, row-major (D4RL's valid_cells order)."""
        return [(i, j) for i, r in enumerate(self.rows) for j, c in enumerate(r) if c != WALL]

    @cached_property
    def goal_cells(self) -> list[tuple[int, int]]:
        return [(i, j) for i, r in enumerate(self.rows) for j, c in enumerate(r) if c == GOAL]

    @cached_property
    def reset_cells(self) -> list[tuple[int, int]]:
        """Cells D4RL's multi-start reset draws from: free cells that are not 'g' (D4RL's
        _np_maze_map turns 'g' into a wall for this draw), uniformly, row-major."""
        return [(i, j) for i, r in enumerate(self.rows) for j, c in enumerate(r) if c in (FREE, RESET)]

    def wall_cells(self) -> list[tuple[int, int]]:
        return [tuple(int(v) for v in c) for c in np.argwhere(self.walls)]

    def is_free(self, cell) -> bool:
        i, j = cell
        return 0 <= i < self.shape[0] and 0 <= j < self.shape[1] and not self.walls[i, j]

    # --- positions -----------------------------------------------------------------------
    @property
    def torso_offset(self) -> tuple[float, float]:
        """D4RL's _init_torso_x, _init_torso_y: the world position of the reset cell's centre."""
        i, j = self.reset_cell
        return j * self.scaling, i * self.scaling

    def cell_center(self, cell) -> np.ndarray:
        """Where the wall box of a cell is centred (x from the column, y from the row)."""
        tx, ty = self.torso_offset
        return np.array([cell[1] * self.scaling - tx, cell[0] * self.scaling - ty])

    def wall_boxes(self) -> list[tuple[tuple[int, int], np.ndarray, np.ndarray]]:
        """(cell, centre xyz, half sizes xyz) of each wall block, as maze_env.py builds them."""
        half = np.array([0.5 * self.scaling, 0.5 * self.scaling, MAZE_HEIGHT / 2 * self.scaling])
        return [(c, np.r_[self.cell_center(c), MAZE_HEIGHT / 2 * self.scaling], half) for c in self.wall_cells()]

    def xy_to_rowcol(self, xy) -> tuple[int, int]:
        """D4RL's _xy_to_rowcol (or the fork's)."""
        s = self.scaling
        if self.tap_geometry:
            tx, ty = self.torso_offset
            return int((xy[1] + ty + 0.25 * s) / s), int((xy[0] + tx + 0.25 * s) / s)
        x, y = max(float(xy[0]), 1e-4), max(float(xy[1]), 1e-4)
        return int(1 + y / s), int(1 + x / s)

    def containing_cell(self, xy) -> tuple[int, int]:
        """The cell whose box in the wall geometry (centred on cell_center) holds the position: where
        the ant physically is, unlike xy_to_rowcol's index, which is half a cell off."""
        tx, ty = self.torso_offset
        s = self.scaling
        return int(np.floor((xy[1] + ty) / s + 0.5)), int(np.floor((xy[0] + tx) / s + 0.5))

    def rowcol_to_xy(self, cell, rng: np.random.Generator | None = None) -> np.ndarray:
        """D4RL's _rowcol_to_xy; with `rng` its add_random_noise=True (+U(0, s/4) per axis)."""
        s = self.scaling
        xy = self.cell_center(cell)
        if self.tap_geometry:
            xy = xy - 0.125 * s
        if rng is not None:
            noise = rng.uniform(0.0, 0.25 * s, size=2)
            xy = xy + (noise - 0.125 * s if self.tap_geometry else noise)
        return xy

    def sample_goal(self, rng: np.random.Generator, cells=None) -> np.ndarray:
        """D4RL's goal_sampler: a cell (the G cells if any, else any free cell, or `cells`),
        its position plus U(0, s/4) per axis, plus U(0, 0.5) * s/4 per axis, clamped at 0."""
        choices = cells if cells is not None else (self.goal_cells or self.free_cells)
        cell = choices[rng.integers(len(choices))]
        xy = self.rowcol_to_xy(cell, rng)
        xy = xy + rng.uniform(0.0, 0.5, size=2) * 0.25 * self.scaling
        return np.maximum(xy, 0.0)

    def sample_reset_location(self, rng: np.random.Generator) -> np.ndarray:
        """D4RL's _get_reset_location (non_zero_reset): a uniformly drawn reset cell's position
        plus U(0, 0.5) * s/2 per axis, clamped at 0."""
        cell = self.reset_cells[rng.integers(len(self.reset_cells))]
        xy = self.rowcol_to_xy(cell) + rng.uniform(0.0, 0.5, size=2) * 0.5 * self.scaling
        return np.maximum(xy, 0.0)

    # --- BFS waypoints -------------------------------------------------------------------
    def _bfs_next(self, current: tuple[int, int], target: tuple[int, int]) -> tuple[int, int] | None:
        """D4RL's _get_best_next_rowcol: BFS from the target; the first visited cell that has the
        current cell as a neighbour (D4RL's visiting order and tie-breaking). None: no path."""
        if current == target:
            return target
        n_rows, n_cols = self.shape
        visited: set[tuple[int, int]] = set()
        to_visit = [target]
        while to_visit:
            next_visit = []
            for cell in to_visit:
                visited.add(cell)
                for dr, dc in BFS_MOVES:
                    nxt = (cell[0] + dr, cell[1] + dc)
                    if nxt == current:
                        return cell
                    if not (0 <= nxt[0] < n_rows and 0 <= nxt[1] < n_cols):
                        continue
                    if self.walls[nxt] or nxt in visited:
                        continue
                    next_visit.append(nxt)
            to_visit = next_visit
        return None

    def next_cell(self, current, target) -> tuple[int, int] | None:
        """The BFS waypoint cell from `current` towards `target` (memoised; None: no path)."""
        key = (int(current[0]), int(current[1]), int(target[0]), int(target[1]))
        cache = self._next_cache
        if key not in cache:
            cache[key] = self._bfs_next(key[:2], key[2:])
        return cache[key]

    @cached_property
    def _next_cache(self) -> dict:
        return {}

    def shortest_path_lengths(self, target) -> dict[tuple[int, int], int]:
        """Plain BFS distances (in cells) from every free cell to `target` (for tests)."""
        dist = {tuple(target): 0}
        queue = deque([tuple(target)])
        while queue:
            cell = queue.popleft()
            for dr, dc in BFS_MOVES:
                nxt = (cell[0] + dr, cell[1] + dc)
                if self.is_free(nxt) and nxt not in dist:
                    dist[nxt] = dist[cell] + 1
                    queue.append(nxt)
        return dist


def maze_maps(maze: str) -> tuple[MazeMap, MazeMap]:
    """(training map, test map) of 'umaze', 'medium', 'large' or 'ultra'."""
    if maze not in MAZES:
        raise ValueError(f"unknown maze {maze!r}; choose one of {', '.join(MAZES)}")
    train, test, tap = MAZES[maze]
    return MazeMap.of(train, tap), MazeMap.of(test, tap)
