"""Per-seed tables of one worker's cells: final scores and the evaluations during training.

RESULTS holds a worker's run folders as `<intent>/seed<K>/` (each with final.json and metrics.csv,
the layout of docs/results/*_paper_protocol_*/). Prints markdown tables:
- one row per seed, one column per intent arm: the final normalised score, mean +- std over the
  final evaluation's episodes; then the mean +- std over seeds (sample std) with Welch's p of each
  arm against the no-intent arm (`runs.aggregate.welch_test`, the test of `python -m runs
  table2|table3`, with its marks: ↑ / ↓ a significant gain / loss at p < 0.05);
- one row per (arm, seed), one column per evaluation step: the evaluations during training
  (metrics.csv's eval_normalized_score; the last one is the final evaluation);
- two other readings of the no-intent arm, each against every intent arm's final scores with
  Welch's p: its evaluation at the step where the intent arms stop (equal training), and the mean
  of its last `--last` evaluations (less weight on where the last one lands in a swing); then the
  intent arms against each other.

    python benchmarks/seed_cells_table.py docs/results/td3_bc_paper_protocol_maze2d-medium_cpu
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runs.aggregate import read_eval_scores, welch_test  # noqa: E402

ARMS = ("none", "manager", "random")
ARM_NAMES = {"none": "no intents", "manager": "Manager intents", "random": "random intents"}
SEED_DIR = re.compile(r"seed(\d+)$")


def read_cells(results: Path) -> dict[str, dict[int, dict]]:
    """{arm: {seed: {"final": final.json, "evals": {step: score}}}} for the finished cells."""
    cells: dict[str, dict[int, dict]] = {}
    for arm in ARMS:
        for seed_dir in sorted((results / arm).glob("seed*")):
            match = SEED_DIR.search(seed_dir.name)
            final_path = seed_dir / "final.json"
            if not match or not final_path.is_file():
                continue
            cells.setdefault(arm, {})[int(match.group(1))] = {
                "final": json.loads(final_path.read_text()), "evals": read_eval_scores(seed_dir / "metrics.csv")}
    if not cells:
        raise SystemExit(f"no finished cells (<arm>/seed<K>/final.json) under {results}")
    return cells


def final_table(cells: dict[str, dict[int, dict]]) -> str:
    arms = [arm for arm in ARMS if arm in cells]
    seeds = sorted({seed for arm in arms for seed in cells[arm]})
    header = "| seed | " + " | ".join(f"{ARM_NAMES[arm]} ({_steps(cells[arm])})" for arm in arms) + " |"
    lines = [header, "| --- " * (len(arms) + 1) + "|"]
    for seed in seeds:
        row = []
        for arm in arms:
            final = cells[arm].get(seed, {}).get("final")
            row.append(f"{final['normalized_score']:.1f} ± {final['normalized_score_std']:.1f}" if final else "")
        lines.append(f"| {seed} | " + " | ".join(row) + " |")
    scores = final_scores(cells)
    summary = [_against(scores.get("none"), scores[arm]) if arm != "none" else _spread(scores[arm]) for arm in arms]
    lines.append("| mean ± std over seeds | " + " | ".join(summary) + " |")
    return "\n".join(lines)


def final_scores(cells: dict[str, dict[int, dict]]) -> dict[str, list[float]]:
    """{arm: final normalised scores, in seed order}."""
    return {arm: [cell["final"]["normalized_score"] for _, cell in sorted(arm_cells.items())]
            for arm, arm_cells in cells.items()}


def baseline_readings_table(cells: dict[str, dict[int, dict]], last: int = 2) -> str:
    """The no-intent arm read at the intent arms' last step and over its last `last` evaluations."""
    if last < 1:
        raise ValueError(f"--last {last}: the baseline's reading averages its last 1 or more evaluations; give 1 or more")
    intent_arms = [arm for arm in ARMS if arm != "none" and arm in cells]
    if "none" not in cells or not intent_arms:
        return "(needs the no-intent arm and at least one intent arm)"
    scores = final_scores(cells)
    intent_steps = sorted({cell["final"]["steps"] for arm in intent_arms for cell in cells[arm].values()})
    baseline_evals = [cell["evals"] for _, cell in sorted(cells["none"].items())]
    readings = {}
    if len(intent_steps) == 1:  # equal training: only defined where the intent arms share one length
        step = intent_steps[0]
        readings[f"at {step // 1000}K steps (where the intent arms stop)"] = [
            evals[step] for evals in baseline_evals if step in evals]
    readings[f"mean of its last {last} evaluations"] = [
        statistics.mean(evals[s] for s in sorted(evals)[-last:]) for evals in baseline_evals if evals]
    arm_headers = " | ".join(ARM_NAMES[arm] + " (final)" for arm in intent_arms)
    lines = [f"| no intents, read | its score | {arm_headers} |",
             "| --- " * (len(intent_arms) + 2) + "|"]
    for name, values in readings.items():
        lines.append(f"| {name} | {_spread(values)} | "
                     + " | ".join(_against(values, scores[arm]) for arm in intent_arms) + " |")
    if len(intent_arms) == 2:
        first, second = intent_arms
        welch = welch_test(scores[first], scores[second])
        lines.append(f"\n{ARM_NAMES[second]} against {ARM_NAMES[first]} (final scores): Welch p {welch.p_text()}")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return f"{statistics.mean(values):.1f} ± {std:.1f} (n {len(values)})"


def _against(baseline: list[float] | None, values: list[float]) -> str:
    """values' mean ± std, and Welch's p (with the grid's mark) against baseline where there is one."""
    if baseline is None:
        return _spread(values)
    welch = welch_test(baseline, values)
    return f"{_spread(values)}{welch.marker()}, Welch p {welch.p_text()}"


def evals_table(cells: dict[str, dict[int, dict]]) -> str:
    steps = sorted({step for arm in cells.values() for cell in arm.values() for step in cell["evals"]})
    lines = ["| arm, seed | " + " | ".join(f"{step // 1000}K" for step in steps) + " |",
             "| --- " * (len(steps) + 1) + "|"]
    for arm in (a for a in ARMS if a in cells):
        for seed, cell in sorted(cells[arm].items()):
            lines.append(f"| {ARM_NAMES[arm]}, seed {seed} | "
                         + " | ".join(f"{cell['evals'][s]:.1f}" if s in cell["evals"] else "" for s in steps) + " |")
    return "\n".join(lines)


def _steps(arm_cells: dict[int, dict]) -> str:
    steps = sorted({cell["final"]["steps"] for cell in arm_cells.values()})
    return ", ".join(f"{s // 1000}K" for s in steps) + " steps"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="folder holding <intent>/seed<K>/ run folders of one worker")
    parser.add_argument("--last", type=int, default=2,
                        help="how many of the no-intent arm's last evaluations its second reading averages")
    args = parser.parse_args()
    cells = read_cells(args.results)
    try:  # the readings table owns the --last rule; its message goes out as a usage error
        readings = baseline_readings_table(cells, args.last)
    except ValueError as error:
        parser.error(str(error))
    print(final_table(cells))
    print()
    print(evals_table(cells))
    print()
    print(readings)


if __name__ == "__main__":
    main()
