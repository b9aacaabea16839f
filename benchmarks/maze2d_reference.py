"""Measurements behind docs/tasks.md for the maze2d tasks.

For each maze: the waypoint controller's and the random policy's mean return over 100 episodes
(controller under both protocols: a fresh controller per episode, and D4RL's reference protocol
of one controller kept across episodes) beside D4RL's REF_MAX / REF_MIN; the full-size dataset
(D4RL's size, seed 0) regenerated and written, with its generation speed and statistics.

    python benchmarks/maze2d_reference.py --out docs/results/maze2d_reference.json
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import write_json_atomic  # noqa: E402
from generation_timing import timed_generation  # noqa: E402
from tasks import TASKS, evaluate_policy, get_normalized_score, make_policy, trajectories  # noqa: E402
from tasks.datasets import code_version  # noqa: E402


def score_policies(name: str, episodes: int, seed: int) -> dict:
    out = {}
    for label, policy, d4rl_protocol in [("controller_per_episode", "controller", False),
                                         ("controller_d4rl_protocol", "controller", True),
                                         ("random", "random", False)]:
        returns = evaluate_policy(name, make_policy(name, policy, seed, d4rl_protocol), episodes, seed,
                                  num_envs=1 if d4rl_protocol else episodes)
        out[label] = {"mean_return": float(returns.mean()), "std_return": float(returns.std()),
                      "normalized_score": float(get_normalized_score(name, returns.mean()))}
    return out


def dataset_statistics(name: str, steps: int | None, seed: int) -> dict:
    data, elapsed, size_mb = timed_generation(name, steps, seed, show_progress=False)
    episodes = trajectories(data, drop_incomplete=False)
    returns = np.array([ep["rewards"].sum() for ep in episodes])
    lengths = np.array([len(ep["rewards"]) for ep in episodes])
    return {"steps": int(len(data["rewards"])), "episodes": len(episodes), "timeouts": int(data["timeouts"].sum()),
            "terminals": int(data["terminals"].sum()), "mean_episode_return": float(returns.mean()),
            "mean_episode_length": float(lengths.mean()), "rewarded_fraction": float(data["rewards"].mean()),
            "generation_s_incl_write": elapsed, "steps_per_s_incl_write": len(data["rewards"]) / elapsed,
            "file_mb": size_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes per policy")
    parser.add_argument("--steps", type=int, default=None, help="dataset size (default: D4RL's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of evaluation and generation")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    results = {"machine": f"{platform.machine()} {platform.processor() or ''} (CPU, 1 process)".strip(),
               "code_version": code_version(), "episodes": args.episodes, "seed": args.seed, "tasks": {}}
    for name in sorted(n for n, s in TASKS.items() if s.domain == "maze2d"):
        spec = TASKS[name]
        entry = {"ref_min": spec.ref_min_score, "ref_max": spec.ref_max_score,
                 "policies": score_policies(name, args.episodes, args.seed),
                 "dataset": dataset_statistics(name, args.steps, args.seed)}
        results["tasks"][name] = entry
        p, d = entry["policies"], entry["dataset"]
        print(f"{name}: controller {p['controller_per_episode']['mean_return']:.1f} (per-episode) / "
              f"{p['controller_d4rl_protocol']['mean_return']:.1f} (D4RL protocol) vs REF_MAX {spec.ref_max_score}; "
              f"random {p['random']['mean_return']:.2f} vs REF_MIN {spec.ref_min_score}; dataset {d['steps']} steps, "
              f"{d['episodes']} episodes, {d['steps_per_s_incl_write']:.0f} steps/s", flush=True)
    if args.out:
        write_json_atomic(args.out, results)


if __name__ == "__main__":
    main()
