"""Is the worker or the Manager's planner the bottleneck? BC on maze2d with planned vs oracle intents.

Trains one worker (default BC) on a Manager's hindsight intents (the usual `--intent manager`
run) and evaluates it twice, identically seeded, with two kinds of evaluation intents:

- planned: the Manager's planner, as `make worker` does;
- oracle: the Manager's own inverse dynamics, asked for the intent of a state `--distance` units
  along D4RL's shortest grid path to the goal (velocity: that direction at the dataset's mean
  speed), i.e. what a Manager that plans perfectly would ask for, in the Manager's own code.

If the oracle scores high and the planner does not, the worker follows intents and the Manager's
value / planner is what holds the hierarchy back (and vice versa).

    python benchmarks/oracle_intents.py --manager runs/maze2d-umaze-v1/manager/seed0/manager.pt
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corl.__main__ import main as worker_main  # noqa: E402
from intent_direction import goal_directions  # noqa: E402
from tasks import load_dataset  # noqa: E402
from tasks.maze2d.layouts import LAYOUTS, MazeGrid  # noqa: E402
from wrappers.sources import ManagerIntentSource  # noqa: E402


def oracle_plan_intents(grid: MazeGrid, distance: float, speed: float):
    """A replacement for ManagerIntentSource.plan_intents: b(z_t, z(target along the goal path))."""
    def plan_intents(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)  # (N, 4): x, y, vx, vy
        direction = goal_directions(grid, obs[:, :2].astype(np.float64)).astype(np.float32)  # (N, 2)
        target = np.concatenate([obs[:, :2] + distance * direction, speed * direction], axis=1)
        return self.pair_intents(obs, target)
    return plan_intents


def run_worker(args, runs_dir: Path) -> dict:
    argv = [args.algo, "--env", args.env, "--seed", str(args.seed), "--intent", "manager",
            "--manager", args.manager, "--steps", str(args.steps), "--device", "cpu", "--profile", "quick",
            "--final_eval_episodes", str(args.episodes), "--eval_every", str(args.steps),
            "--runs_dir", str(runs_dir), "--progress", "false",
            *(["--data_dir", args.data_dir] if args.data_dir else [])]
    if worker_main(argv) != 0:
        raise SystemExit("the worker failed; see above")
    return json.loads((runs_dir / args.env / args.algo / "manager" / f"seed{args.seed}" / "final.json").read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manager", required=True, help="path of a maze2d manager.pt")
    parser.add_argument("--env", default="maze2d-umaze-v1")
    parser.add_argument("--algo", default="bc")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20000, help="worker training steps")
    parser.add_argument("--episodes", type=int, default=50, help="final evaluation episodes")
    parser.add_argument("--distance", type=float, default=None,
                        help="how far along the path the oracle's target lies (default: the dataset's mean "
                             "k-step displacement)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out-dir", required=True, help="folder for the two worker runs")
    args = parser.parse_args(argv)
    layout = next(name for name in LAYOUTS if f"maze2d-{name}" in args.env)
    grid = MazeGrid(LAYOUTS[layout])
    data = load_dataset(args.env, args.data_dir)
    k = ManagerIntentSource(args.manager, args.env, data["observations"].shape[1], device="cpu").k
    obs = data["observations"][:100_000]
    distance = args.distance or float(np.linalg.norm(obs[k:, :2] - obs[:-k, :2], axis=1).mean())
    speed = float(np.linalg.norm(obs[:, 2:4], axis=1).mean())
    out = Path(args.out_dir)
    planned = run_worker(args, out / "planned")
    ManagerIntentSource.plan_intents = oracle_plan_intents(grid, distance, speed)
    oracle = run_worker(args, out / "oracle")
    print(json.dumps({"manager": args.manager, "algo": args.algo, "steps": args.steps, "episodes": args.episodes,
                      "oracle_distance": distance, "oracle_speed": speed,
                      "planned_score": planned["normalized_score"], "planned_std": planned["normalized_score_std"],
                      "oracle_score": oracle["normalized_score"], "oracle_std": oracle["normalized_score_std"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
