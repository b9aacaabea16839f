"""Episode-return statistics of generated halfcheetah datasets, for the tables in docs/tasks.md.

    python benchmarks/halfcheetah_dataset_stats.py FILE [FILE ...] [--out docs/results/NAME.json]

Per file: steps, episodes (split on timeouts/terminals, a trailing partial episode kept), episode
return mean, std, min, max, 5th/50th/95th percentile and the mean's D4RL normalised score. A
medium-expert file is also reported per part: its first steps - steps // 2 rows are the medium
policy's, the rest the expert's (the generator's split, `steps` read from the file's attributes;
the two parts never share an episode).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import write_json_atomic  # noqa: E402
from tasks.datasets import dataset_provenance, read_dataset, trajectories  # noqa: E402
from tasks.evaluation import get_normalized_score  # noqa: E402
from tasks.registry import get_task  # noqa: E402

TASK_BY_FILE = {"halfcheetah_medium-v2.hdf5": "halfcheetah-medium-v2",
                "halfcheetah_medium_replay-v2.hdf5": "halfcheetah-medium-replay-v2",
                "halfcheetah_medium_expert-v2.hdf5": "halfcheetah-medium-expert-v2"}


def return_stats(task: str, data: dict[str, np.ndarray]) -> dict[str, float]:
    episodes = trajectories(data, drop_incomplete=False)
    returns = np.array([ep["rewards"].sum(dtype=np.float64) for ep in episodes])  # (episodes,)
    p05, p50, p95 = np.percentile(returns, [5, 50, 95])
    return {"steps": int(len(data["rewards"])), "episodes": len(episodes),
            "return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "return_min": float(returns.min()), "return_max": float(returns.max()),
            "return_p05": float(p05), "return_p50": float(p50), "return_p95": float(p95),
            "normalized_mean": float(get_normalized_score(task, returns.mean()))}


def slice_rows(data: dict[str, np.ndarray], rows: slice) -> dict[str, np.ndarray]:
    return {key: value[rows] for key, value in data.items()}


def file_stats(path: Path) -> dict:
    task = TASK_BY_FILE.get(path.name)
    if task is None:
        raise SystemExit(f"error: {path.name} is not a halfcheetah dataset file name ({', '.join(TASK_BY_FILE)})")
    data = read_dataset(path, get_task(task))
    provenance = dataset_provenance(path)
    stats = {"task": task, "file": str(path), "file_mb": round(path.stat().st_size / 2**20, 1),
             "provenance": {k: (v.item() if isinstance(v, np.generic) else v) for k, v in provenance.items()},
             "all": return_stats(task, data)}
    if task == "halfcheetah-medium-expert-v2":
        steps = int(provenance.get("steps", len(data["rewards"])))
        split = steps - steps // 2  # tasks/halfcheetah/generate.py: medium rows first
        stats["medium_part"] = return_stats(task, slice_rows(data, slice(0, split)))
        stats["expert_part"] = return_stats(task, slice_rows(data, slice(split, None)))
    return stats


def describe(name: str, s: dict[str, float]) -> str:
    return (f"{name}: {s['steps']:,} steps, {s['episodes']:,} episodes, return {s['return_mean']:,.1f} +- "
            f"{s['return_std']:,.1f} [{s['return_min']:,.1f}, {s['return_max']:,.1f}], p05/p50/p95 "
            f"{s['return_p05']:,.0f} / {s['return_p50']:,.0f} / {s['return_p95']:,.0f}, normalised "
            f"{s['normalized_mean']:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="generated halfcheetah .hdf5 files")
    parser.add_argument("--out", type=Path, default=None, help="write all statistics to this JSON file")
    args = parser.parse_args(argv)
    results = []
    for path in args.files:
        stats = file_stats(path)
        results.append(stats)
        print(f"{path} ({stats['file_mb']} MB)")
        for part in ("all", "medium_part", "expert_part"):
            if part in stats:
                print("  " + describe(part, stats[part]))
    if args.out:
        write_json_atomic(args.out, {"datasets": results})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
