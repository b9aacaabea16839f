"""Do a maze2d Manager's intents point the way to the goal? (decoder-based, no worker needed)

For dataset states s_t (rows whose state k steps on lies in the same episode) this decodes where
an intent points, decode(encode(s_t) + g) (paper Fig. 2), and compares the decoded displacement of
the position with two references:

- planned intents (what a worker sees at evaluation) against the shortest-path direction to the
  goal: the unit vector towards the centre of the next cell on D4RL's grid path (towards the goal
  itself inside the goal cell). A Manager whose value points to the goal scores a mean cosine near
  1; one that ignores the goal scores about 0.
- the Manager's value V at rest at every cell centre, nearest-to-goal first (it should fall along
  the list), and its rank correlation with the grid MDP's optimal value over the dataset states;
- hindsight intents b(z_t, z_{t+k}) (what the worker was trained on) against the displacement that
  really happened, s_{t+k} - s_t: the decoder's and the inverse dynamics' fidelity.

    python benchmarks/intent_direction.py --manager runs/maze2d-umaze-v1/manager/seed0/manager.pt

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


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (ties broken by order; fine for a diagnostic)."""
    ra, rb = a.argsort().argsort(), b.argsort().argsort()
    return float(np.corrcoef(ra, rb)[0, 1])


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-8)


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = (unit(a) * unit(b)).sum(-1)
    return {"mean_cosine": float(cos.mean()), "fraction_positive": float((cos > 0).mean())}


def measure(manager_path: str, env: str, data_dir: str | None, rows: int, seed: int) -> dict:
    spec = get_task(env)
    layout = next(name for name in LAYOUTS if f"maze2d-{name}" in env)
    grid = MazeGrid(LAYOUTS[layout])
    manager = ManagerIntents(manager_path, env=env, obs_dim=spec.obs_dim, device="cpu", seed=seed)
    k = manager.k
    data = load_dataset(env, data_dir)
    obs = data["observations"][:rows + k]
    ends = episode_timeouts(data)[:rows + k] | data["terminals"][:rows + k].astype(bool)
    # rows t whose state t+k is in the same episode: no episode end in [t, t+k)
    end_count = np.concatenate([[0], np.cumsum(ends)])
    t = np.arange(rows)
    t = t[end_count[t + k] - end_count[t] == 0]
    s_t, s_k = obs[t], obs[t + k]
    with torch.no_grad():
        z = manager.encode(s_t)
        planned = manager.decode(z + manager.plan_intents(s_t)).numpy()
        hindsight = manager.decode(z + manager.pair_intents(s_t, s_k)).numpy()
        recon = manager.decode(z).numpy()
        value = manager.model.V(z).squeeze(-1).numpy()
    xy = s_t[:, :2]
    return {
        "manager": manager_path, "env": env, "states": int(len(t)), "k": k,
        "planned_vs_goal_path": cosine_stats(planned[:, :2] - xy, goal_directions(grid, xy)),
        "hindsight_vs_actual": cosine_stats(hindsight[:, :2] - xy, s_k[:, :2] - xy),
        "dataset_vs_goal_path": cosine_stats(s_k[:, :2] - xy, goal_directions(grid, xy)),
        "value_vs_grid_value_spearman": rank_correlation(value, grid_values(grid, xy)),
        "value_at_cell_centres_nearest_goal_first": value_along_path(manager, grid),
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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    for path in args.manager:
        print(json.dumps(measure(path, args.env, args.data_dir, args.rows, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
