"""D4RL's maze2d waypoint controller (d4rl/pointmaze/waypoint_controller.py, q_iteration.py).

Procedure, as D4RL's:
- the cell grid is a deterministic MDP with 5 actions in D4RL's order (stay, -y, +y, -x, +x);
  moving into a wall or off the grid stays put; reward 1 for acting from the target cell;
- 50 sweeps of hard-max Q-iteration with discount 0.99, then a greedy rollout of at most
  100 cells from the start cell (np.argmax tie-breaking: the first best action);
- every intermediate waypoint is shifted by -U(0, 0.2) per axis, the last one is the target cell;
- action = clip(10 (waypoint - pos) - 1 vel, -1, 1); a waypoint is passed when closer than 0.1
  and the per-step displacement is below 0.1;
- waypoints are recomputed only when the rounded target cell changes (see SPEC.md: D4RL's
  reference protocol keeps one controller across episodes and so steers with stale waypoints).
"""
from __future__ import annotations

import math

import numpy as np

from tasks.maze2d.layouts import MazeGrid

# D4RL gridcraft's action order: NOOP, UP, DOWN, LEFT, RIGHT as (d_row, d_col).
GRID_MOVES = np.array([[0, 0], [0, -1], [0, 1], [-1, 0], [1, 0]])
Q_ITERATIONS = 50
Q_DISCOUNT = 0.99
MAX_WAYPOINTS = 100
SOLVE_THRESHOLD = 0.1
VELOCITY_THRESHOLD = 0.1
P_GAIN, D_GAIN = 10.0, -1.0
WAYPOINT_JITTER = 0.2


def grid_q_values(grid: MazeGrid, target_cell: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Q-iteration on the cell grid.

    Returns (q, next_cell): q is (n_rows * n_cols, 5) over flat cell index i * n_cols + j,
    next_cell (n_cells, 5) the deterministic successor of each (cell, action).
    """
    n_rows, n_cols = grid.shape
    cells = np.array([(i, j) for i in range(n_rows) for j in range(n_cols)])  # (n_cells, 2)
    moved = cells[:, None, :] + GRID_MOVES[None, :, :]  # (n_cells, 5, 2)
    inside = (moved[..., 0] >= 0) & (moved[..., 0] < n_rows) & (moved[..., 1] >= 0) & (moved[..., 1] < n_cols)
    moved_clipped = np.where(inside[..., None], moved, cells[:, None, :])
    legal = inside & ~grid.walls[moved_clipped[..., 0], moved_clipped[..., 1]]
    next_xy = np.where(legal[..., None], moved, cells[:, None, :])
    next_cell = next_xy[..., 0] * n_cols + next_xy[..., 1]  # (n_cells, 5)
    reward = np.zeros(len(cells))
    reward[target_cell[0] * n_cols + target_cell[1]] = 1.0
    q = np.zeros((len(cells), len(GRID_MOVES)))
    for _ in range(Q_ITERATIONS):
        v = q.max(axis=1)
        q = reward[:, None] + Q_DISCOUNT * v[next_cell]
    return q, next_cell


def rounded_cell(position) -> tuple[int, int]:
    return int(round(float(position[0]))), int(round(float(position[1])))


class WaypointController:
    """Stateful controller for one maze; `rng` draws the waypoint jitter."""

    def __init__(self, grid: MazeGrid, rng: np.random.Generator):
        self.grid = grid
        self.rng = rng
        self._q_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        # D4RL initialises its target to -1000 * ONES where ONES is (by a typo) zeros.
        self.target_cell: tuple[int, int] = (0, 0)
        self.waypoints: list[tuple[float, float]] = []
        self.waypoint_idx = 0
        self.prev_location = (0.0, 0.0)

    def plan(self, start, target_cell: tuple[int, int]) -> None:
        """Greedy rollout of the grid Q-function from the start cell to the target cell."""
        if target_cell not in self._q_cache:
            self._q_cache[target_cell] = grid_q_values(self.grid, target_cell)
        q, next_cell = self._q_cache[target_cell]
        n_cols = self.grid.shape[1]
        start_cell = rounded_cell(start)
        s = start_cell[0] * n_cols + start_cell[1]
        target_idx = target_cell[0] * n_cols + target_cell[1]
        waypoints = []
        for _ in range(MAX_WAYPOINTS):
            s = next_cell[s, int(np.argmax(q[s]))]
            x, y = float(s // n_cols), float(s % n_cols)
            if s != target_idx:
                jitter = self.rng.uniform(size=2) * WAYPOINT_JITTER
                x, y = x - jitter[0], y - jitter[1]
            waypoints.append((x, y))
            if s == target_idx:
                break
        self.waypoints = waypoints
        self.waypoint_idx = 0
        self.prev_location = (float(start[0]), float(start[1]))
        self.target_cell = target_cell

    def act(self, location, velocity, target) -> tuple[np.ndarray, bool]:
        """Action in [-1, 1]^2 and whether the target cell is reached (D4RL's `done`)."""
        target_cell = rounded_cell(target)
        if target_cell != self.target_cell:
            self.plan(location, target_cell)
        px, py = float(location[0]), float(location[1])
        dist = math.hypot(px - self.target_cell[0], py - self.target_cell[1])
        step_norm = math.hypot(self.prev_location[0] - px, self.prev_location[1] - py)
        not_solved = dist >= SOLVE_THRESHOLD or step_norm >= VELOCITY_THRESHOLD
        wx, wy = self.waypoints[self.waypoint_idx] if not_solved else self.target_cell
        ax = P_GAIN * (wx - px) + D_GAIN * float(velocity[0])
        ay = P_GAIN * (wy - py) + D_GAIN * float(velocity[1])
        if not_solved and math.hypot(px - wx, py - wy) < SOLVE_THRESHOLD and step_norm < VELOCITY_THRESHOLD:
            self.waypoint_idx += 1
        self.prev_location = (px, py)
        action = np.array([min(max(ax, -1.0), 1.0), min(max(ay, -1.0), 1.0)])
        return action, not not_solved
