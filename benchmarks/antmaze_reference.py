"""Measurements behind docs/tasks.md for the antmaze tasks.

Per maze (on the evaluation env of its play task): the success rate of the scripted policies
(expert = BFS waypoints + D4RL's goal-reaching policy, sampled actions as D4RL's get_action;
expert-mean = tanh(mean) actions; expert-noisy = D4RL's data-collection behaviour, sampled + N(0, 0.2);
random = uniform actions). Per task: a regenerated dataset (seed 0) with its generation speed and
statistics. Results are written after every item, so a long run can be stopped and read.

    python benchmarks/antmaze_reference.py --out docs/results/antmaze_reference.json \
        [--episodes 50] [--other-episodes 20] [--steps 100000] [--full umaze-v2 ...] [--skip-eval]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import write_json_atomic  # noqa: E402
from generation_timing import timed_generation  # noqa: E402
from tasks import TASKS, evaluate_policy, make_policy, trajectories  # noqa: E402
from tasks.antmaze.generate import EPISODE_ROWS  # noqa: E402
from tasks.datasets import code_version  # noqa: E402

EVAL_TASKS = ["antmaze-umaze-v2", "antmaze-medium-play-v2", "antmaze-large-play-v2", "antmaze-ultra-play-v0"]


def success_rate(name: str, policy: str, episodes: int, seed: int) -> dict:
    start = time.perf_counter()
    returns = evaluate_policy(name, make_policy(name, policy, seed), episodes, seed, num_envs=min(episodes, 25))
    return {"episodes": episodes, "success_rate": float(returns.mean()),
            "stderr": float(returns.std() / np.sqrt(episodes)), "wall_s": time.perf_counter() - start}


def dataset_statistics(name: str, steps: int, seed: int) -> dict:
    data, elapsed, size_mb = timed_generation(name, steps, seed, show_progress=True)
    n = len(data["rewards"])
    bounds = [(s, min(s + EPISODE_ROWS, n)) for s in range(0, n, EPISODE_ROWS)]
    full = [(s, e) for s, e in bounds if e - s == EPISODE_ROWS]
    xy, goals, z = data["observations"][:, :2], data["infos/goal"], data["observations"][:, 2]
    quat = data["observations"][:, 3:7]
    up = 1 - 2 * (quat[:, 1] ** 2 + quat[:, 2] ** 2)  # z component of the torso's z axis
    reached = [bool(np.any(np.linalg.norm(xy[s:e] - goals[s], axis=1) <= 0.5)) for s, e in full]
    returns = [float(data["rewards"][s:e].sum()) for s, e in full]
    flipped = [bool(up[e - 1] < 0) for s, e in full]
    split = trajectories(data, drop_incomplete=False)
    return {"steps": n, "segments_1001": len(full), "timeouts": int(data["timeouts"].sum()),
            "terminals": int(data["terminals"].sum()),
            "trajectories_split_on_terminals_or_timeouts": len(split),
            "mean_segment_return": float(np.mean(returns)) if returns else None,
            "segments_with_reward": float(np.mean([r > 0 for r in returns])) if returns else None,
            "rewarded_fraction": float(data["rewards"].mean()),
            "commanded_goal_reached": float(np.mean(reached)) if reached else None,
            "flipped_at_segment_end": float(np.mean(flipped)) if flipped else None,
            "torso_below_0.3_fraction": float(np.mean(z < 0.3)),
            "generation_s_incl_write": elapsed, "steps_per_s_incl_write": n / elapsed, "file_mb": size_mb}


TABLE_COLUMNS = (("steps", "{:,}"), ("segments_1001", "{}"), ("trajectories_split_on_terminals_or_timeouts", "{:,}"),
                 ("mean_segment_return", "{:.2f}"), ("rewarded_fraction", "{:.4f}"), ("segments_with_reward", "{:.2f}"),
                 ("commanded_goal_reached", "{:.2f}"), ("flipped_at_segment_end", "{:.2f}"),
                 ("steps_per_s_incl_write", "{:.0f}"), ("file_mb", "{:.0f} MB"))


def dataset_table(results: dict) -> str:
    """The markdown rows of docs/tasks.md's antmaze dataset table, from a results JSON."""
    def cell(value, fmt):
        return "-" if value is None else fmt.format(value)

    rows = []
    for name, d in sorted(results.get("datasets", {}).items(), key=lambda item: list(TASKS).index(item[0])):
        rows.append("| " + " | ".join([name, *(cell(d.get(key), fmt) for key, fmt in TABLE_COLUMNS)]) + " |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes of the expert")
    parser.add_argument("--other-episodes", type=int, default=20, help="episodes of the other policies")
    parser.add_argument("--steps", type=int, default=100_000, help="dataset size of the sampled datasets")
    parser.add_argument("--full", nargs="*", default=["antmaze-umaze-v2"], help="tasks generated at 1M steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--skip-datasets", action="store_true")
    parser.add_argument("--out", default=None, help="write (update) the results as JSON here")
    parser.add_argument("--table", action="store_true", help="only print the dataset table rows of --out's JSON")
    args = parser.parse_args()
    if args.table:
        print(dataset_table(json.loads(Path(args.out).read_text())))
        return
    results = {}
    if args.out and Path(args.out).is_file():
        results = json.loads(Path(args.out).read_text())
    results.update({"machine": f"{platform.machine()} {platform.processor() or ''} (CPU, 1 process)".strip(),
                    "code_version": code_version(), "seed": args.seed})
    results.setdefault("policies", {})
    results.setdefault("datasets", {})

    def save():
        if args.out:
            write_json_atomic(args.out, results)

    if not args.skip_eval:
        for name in EVAL_TASKS:
            for policy, episodes in [("expert", args.episodes), ("expert-mean", args.other_episodes),
                                     ("expert-noisy", args.other_episodes), ("random", args.other_episodes)]:
                r = success_rate(name, policy, episodes, args.seed)
                results["policies"].setdefault(name, {})[policy] = r
                print(f"{name} {policy}: success {r['success_rate']:.3f} +- {r['stderr']:.3f} "
                      f"({episodes} episodes, {r['wall_s']:.0f} s)", flush=True)
                save()
    if not args.skip_datasets:
        order = list(args.full) + [n for n in sorted(TASKS) if TASKS[n].domain == "antmaze" and n not in args.full]
        for name in order:
            steps = TASKS[name].default_dataset_steps if name in args.full else args.steps
            d = dataset_statistics(name, steps, args.seed)
            results["datasets"][name] = d
            print(f"{name}: {json.dumps(d)}", flush=True)
            save()


if __name__ == "__main__":
    main()
