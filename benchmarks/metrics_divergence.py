"""How far two runs of one command drift apart: relative differences of their logged metrics.

Given the metrics.csv of two runs with the same config (one seed trained on two machines, say),
prints for each step both logged (or those in `--steps`) the largest and smallest relative
difference |a - b| / |b| over the quantities both rows hold, leaving out the step, the timing
columns (steps_per_s, *_s) and empty cells. Equal float rounding gives 0 at every step; another
CPU's rounding gives ~1e-7 at first, then grows as training feeds it back.

    python benchmarks/metrics_divergence.py RUN_A/metrics.csv RUN_B/metrics.csv --steps 100,1000,20000
"""
from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path


def read_metrics(path: Path) -> dict[int, dict[str, float]]:
    """{step: {column: value}} of a metrics.csv, without timing columns and empty cells."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such file; pass a run folder's metrics.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "step" not in rows[0]:
        raise SystemExit(f"{path}: not a run's metrics.csv (no 'step' column or no rows)")
    return {int(row["step"]): {name: float(value) for name, value in row.items()
                               if name != "step" and not name.endswith("_s")  # timing: steps_per_s, *_s
                               and value not in ("", None)}
            for row in rows}


def relative_difference(a: float, b: float) -> float:
    """|a - b| / |b|; 0 where both are 0, inf where only b is."""
    if a == b:
        return 0.0
    return math.inf if b == 0 else abs(a - b) / abs(b)


def divergence(run_a: dict[int, dict[str, float]], run_b: dict[int, dict[str, float]],
               steps: list[int] | None = None) -> list[tuple[int, float, float, int]]:
    """(step, largest, smallest relative difference, quantities compared) per step both runs logged."""
    shared = sorted(set(run_a) & set(run_b))
    if steps:
        missing = [step for step in steps if step not in shared]
        if missing:
            raise SystemExit(f"steps {missing} are not logged by both runs (shared: {shared[0]}..{shared[-1]})"
                             if shared else "the two runs share no logged step")
        shared = steps
    out = []
    for step in shared:
        names = sorted(set(run_a[step]) & set(run_b[step]))
        diffs = [relative_difference(run_a[step][name], run_b[step][name]) for name in names]
        if diffs:
            out.append((step, max(diffs), min(diffs), len(diffs)))
    return out


def divergence_table(rows: list[tuple[int, float, float, int]]) -> str:
    lines = ["| step | largest relative difference | smallest | quantities |", "| --- | --- | --- | --- |"]
    lines += [f"| {step} | {largest:.2g} | {smallest:.2g} | {count} |" for step, largest, smallest, count in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", type=Path, help="the first run's metrics.csv")
    parser.add_argument("run_b", type=Path, help="the second run's metrics.csv (the reference: |a - b| / |b|)")
    parser.add_argument("--steps", default="", help="comma-separated steps to compare (default: every shared step)")
    args = parser.parse_args()
    steps = [int(step) for step in args.steps.split(",") if step] or None
    print(divergence_table(divergence(read_metrics(args.run_a), read_metrics(args.run_b), steps)))


if __name__ == "__main__":
    main()
