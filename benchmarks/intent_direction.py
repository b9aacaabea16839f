"""Do a maze Manager's intents point the way to the goal? (decoder-based, no worker needed)

For dataset states s_t (rows whose state k steps on lies in the same episode) this decodes where
an intent points, decode(encode(s_t) + g) (paper Fig. 2), and compares the decoded displacement of
the position with two references:

- planned intents (what a worker sees at evaluation) against the shortest-path direction to the
  goal: the unit vector towards the centre of the next cell on D4RL's grid path (towards the goal
  itself inside the goal cell). A Manager whose value points to the goal scores a mean cosine near
  1; one that ignores the goal scores about 0.
- the Manager's value V at rest at every cell centre, nearest-to-goal first (it should fall along
  the list; maze2d only: an ant's state at rest is more than a position), and its rank correlation
  with the grid MDP's optimal value over the dataset states (antmaze: with minus the BFS distance
  in cells to the goal cell);
- hindsight intents b(z_t, z_{t+k}) (what the worker was trained on) against the displacement that
  really happened, s_{t+k} - s_t: the decoder's and the inverse dynamics' fidelity.

    python benchmarks/intent_direction.py --manager runs/maze2d-umaze-v1/manager/seed0/manager.pt

maze2d works on D4RL's grid (a position is (row, col)); antmaze on its evaluation env's test map
(positions in metres, 4 m cells, D4RL's BFS waypoints towards the map's G cell), the ant's x, y
being the first two observation entries:

    python benchmarks/intent_direction.py --env antmaze-umaze-v2 --manager runs/antmaze-umaze-v2/manager/seed0/manager.pt

Needs a Manager exported with its decoder (the default). Prints one JSON line per Manager.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manager.inference import ManagerIntents  # noqa: E402
from tasks import get_task, load_dataset  # noqa: E402
from tasks.antmaze import ANTMAZE_TASKS  # noqa: E402
from tasks.antmaze.layouts import maze_maps  # noqa: E402
from tasks.datasets import episode_timeouts  # noqa: E402
from tasks.maze2d.controller import grid_q_values  # noqa: E402
from tasks.maze2d.layouts import LAYOUTS, MazeGrid  # noqa: E402


def goal_directions(grid: MazeGrid, xy: np.ndarray) -> np.ndarray:
    """(N, 2) positions -> (N, 2) unit vectors along the grid's shortest path to the goal."""
    q, next_cell = grid_q_values(grid, grid.goal_cell)
    n_cols = grid.shape[1]
    cell = np.clip(np.rint(xy).astype(int), 0, np.array(grid.shape) - 1)  # (N, 2)
    flat = cell[:, 0] * n_cols + cell[:, 1]
    succ = next_cell[flat, q[flat].argmax(1)]
    waypoint = np.stack([succ // n_cols, succ % n_cols], 1).astype(np.float64)  # (N, 2)
    at_goal = (cell == np.array(grid.goal_cell)).all(1)
    waypoint[at_goal] = np.array(grid.goal_cell, dtype=np.float64)
    return unit(waypoint - xy)


def grid_values(grid: MazeGrid, xy: np.ndarray) -> np.ndarray:
    """(N, 2) positions -> (N,) the grid MDP's optimal value of their cell (rises towards the goal)."""
    q, _ = grid_q_values(grid, grid.goal_cell)
    cell = np.clip(np.rint(xy).astype(int), 0, np.array(grid.shape) - 1)
    return q[cell[:, 0] * grid.shape[1] + cell[:, 1]].max(1)


def value_along_path(manager: ManagerIntents, grid: MazeGrid) -> list[list]:
    """V at the centre of every free cell (at rest), nearest-to-goal first: [[row, col, V], ...]."""
    cells = sorted(grid.empty_and_goal_cells, key=lambda c: -grid_values(grid, np.array([c], float))[0])
    obs = np.array([[r, c] + [0.0] * (manager.obs_dim - 2) for r, c in cells], dtype=np.float32)
    with torch.no_grad():
        values = manager.model.V(manager.encode(obs)).squeeze(-1).numpy()
    return [[r, c, round(float(v), 3)] for (r, c), v in zip(cells, values)]


class Maze2dGoal:
    """maze2d's references: D4RL's cell grid of the task's layout and the grid MDP to its goal."""

    def __init__(self, env: str):
        layout = next(name for name in LAYOUTS if f"maze2d-{name}" in env)
        self.grid = MazeGrid(LAYOUTS[layout])

    def directions(self, xy: np.ndarray) -> np.ndarray:
        return goal_directions(self.grid, xy)

    def values(self, xy: np.ndarray) -> np.ndarray:
        return grid_values(self.grid, xy)

    def values_at_rest(self, manager: ManagerIntents) -> list[list] | None:
        return value_along_path(manager, self.grid)


class AntMazeGoal:
    """antmaze's references: the evaluation env's test map, D4RL's BFS towards its one G cell."""

    def __init__(self, env: str):
        self.map = maze_maps(ANTMAZE_TASKS[env][0].maze)[1]
        if len(self.map.goal_cells) != 1:
            raise ValueError(f"{env}: its test map has {len(self.map.goal_cells)} goal cells; this "
                             "diagnostic needs exactly one (D4RL's antmaze test maps each have one)")
        self.goal_cell = self.map.goal_cells[0]
        self.distance = self.map.shortest_path_lengths(self.goal_cell)  # {cell: BFS steps}
        self.unreachable = max(self.distance.values()) + 1  # the distance given to walls and cut-off cells

    def cells(self, xy: np.ndarray) -> list[tuple[int, int]]:
        return [self.map.xy_to_rowcol(p) for p in xy]

    def directions(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) positions -> unit vectors towards the next BFS cell's centre (the goal cell's
        centre inside it, or from a position the map reads as a wall cell)."""
        waypoints = [self.map.cell_center(self.map.next_cell(cell, self.goal_cell) or self.goal_cell)
                     if self.map.is_free(cell) else self.map.cell_center(self.goal_cell)
                     for cell in self.cells(xy)]
        return unit(np.array(waypoints) - xy)

    def distances(self, cells) -> np.ndarray:
        """(N,) BFS distance in cells from each cell to the goal cell (walls: self.unreachable)."""
        return np.array([self.distance.get(cell, self.unreachable) for cell in cells], dtype=np.float64)

    def values(self, xy: np.ndarray) -> np.ndarray:
        """(N,) minus the BFS distance in cells to the goal cell of D4RL's cell of each position."""
        return -self.distances(self.cells(xy))

    def values_at_rest(self, manager: ManagerIntents) -> list[list] | None:
        return None  # an ant at rest needs joint angles and an orientation, not just a position


def goal_reference(env: str):
    domain = get_task(env).domain
    if domain == "maze2d":
        return Maze2dGoal(env)
    if domain == "antmaze":
        return AntMazeGoal(env)
    raise ValueError(f"{env} is a {domain} task; intent directions are measured on maze2d and antmaze "
                     "tasks only (they need a goal and a maze map)")


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (ties broken by order; fine for a diagnostic)."""
    ra, rb = a.argsort().argsort(), b.argsort().argsort()
    return float(np.corrcoef(ra, rb)[0, 1])


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-8)


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = (unit(a) * unit(b)).sum(-1)
    return {"mean_cosine": float(cos.mean()), "fraction_positive": float((cos > 0).mean())}


def measure(manager_path: str, env: str, data_dir: str | None, rows: int, seed: int, every: int = 1) -> dict:
    spec = get_task(env)
    goal = goal_reference(env)
    manager = ManagerIntents(manager_path, env=env, obs_dim=spec.obs_dim, device="cpu", seed=seed)
    k = manager.k
    data = load_dataset(env, data_dir)
    span = (rows - 1) * every + k + 1  # dataset rows read
    if span > len(data["observations"]):
        raise ValueError(f"--rows {rows} --every {every} reads {span} rows; the dataset has "
                         f"{len(data['observations'])}: lower --rows or --every")
    obs = data["observations"][:span]
    ends = episode_timeouts(data)[:span] | data["terminals"][:span].astype(bool)
    # rows t whose state t+k is in the same episode: no episode end in [t, t+k)
    end_count = np.concatenate([[0], np.cumsum(ends)])
    t = np.arange(rows) * every
    t = t[end_count[t + k] - end_count[t] == 0]
    s_t, s_k = obs[t], obs[t + k]
    with torch.no_grad():
        z = manager.encode(s_t)
        planned = manager.decode(z + manager.plan_intents(s_t)).numpy()
        hindsight = manager.decode(z + manager.pair_intents(s_t, s_k)).numpy()
        recon = manager.decode(z).numpy()
        value = manager.model.V(z).squeeze(-1).numpy()
    xy = s_t[:, :2]
    to_goal = goal.directions(xy)  # (N, 2)
    return {
        "manager": manager_path, "env": env, "states": int(len(t)), "k": k,
        "planned_vs_goal_path": cosine_stats(planned[:, :2] - xy, to_goal),
        "hindsight_vs_actual": cosine_stats(hindsight[:, :2] - xy, s_k[:, :2] - xy),
        "dataset_vs_goal_path": cosine_stats(s_k[:, :2] - xy, to_goal),
        "value_vs_grid_value_spearman": rank_correlation(value, goal.values(xy)),
        "value_at_cell_centres_nearest_goal_first": goal.values_at_rest(manager),
        "planned_step_length": float(np.linalg.norm(planned[:, :2] - xy, axis=1).mean()),
        "actual_step_length": float(np.linalg.norm(s_k[:, :2] - xy, axis=1).mean()),
        "reconstruction_error_xy": float(np.linalg.norm(recon[:, :2] - xy, axis=1).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manager", required=True, nargs="+", help="path(s) of manager.pt files")
    parser.add_argument("--env", default="maze2d-umaze-v1")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--rows", type=int, default=5000, help="dataset rows measured")
    parser.add_argument("--every", type=int, default=1,
                        help="measure every N-th row (spreads --rows over more episodes)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    for path in args.manager:
        print(json.dumps(measure(path, args.env, args.data_dir, args.rows, args.seed, args.every)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
