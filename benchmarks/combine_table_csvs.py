"""Combine the table CSVs of grid runs that covered different seeds of the same cells.

`python -m runs tableN --aggregate-only` is the way to aggregate when every seed's run folder sits in one
`runs/` tree (copy the folders of seeds run elsewhere into it). This script is for when the folders are
gone but their tables' CSVs (runs/tableN.csv, which list each seed's final score) are kept, e.g. a
committed CPU row extended by a later run of more seeds: it pools each cell's per-seed scores (a seed
listed twice must carry the same score) and recomputes mean +- std over seeds and Welch's t-test with
the grid's own `welch_test`.

    python benchmarks/combine_table_csvs.py A/table2.csv B/table2.csv [--out combined.csv]
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.atomic import write_text_atomic  # noqa: E402
from runs.aggregate import ALPHA, ArmSummary, welch_test  # noqa: E402
from runs.report import _num, _scores  # noqa: E402  (the grid's own CSV formatting)

KEY = ("table", "env", "column", "baseline_arm", "ours_arm")
PAPER = ("paper_baseline_mean", "paper_baseline_std", "paper_ours_mean", "paper_ours_std")


def parse_scores(text: str) -> dict[int, float]:
    """'0:-4.0;1:2.5' -> {0: -4.0, 1: 2.5} (the CSV's per-seed scores of one arm)."""
    return {int(seed): float(score) for seed, score in (item.split(":") for item in text.split(";") if item)}


def pool(rows_per_file: list[list[dict[str, str]]]) -> list[dict[str, str]]:
    """One row per cell with the union of the files' seeds; cells keep the first file's order."""
    cells: dict[tuple, dict] = {}
    for rows in rows_per_file:
        for row in rows:
            cell = cells.setdefault(tuple(row[k] for k in KEY), {"row": row, "baseline": {}, "ours": {}})
            for side in ("baseline", "ours"):
                for seed, score in parse_scores(row[f"{side}_scores"]).items():
                    if cell[side].get(seed, score) != score:
                        raise ValueError(f"seed {seed} of {row[f'{side}_arm']} on {row['env']} has two scores "
                                         f"({cell[side][seed]} and {score}): the files are of different runs")
                    cell[side][seed] = score
    return [combined_row(c["row"], c["baseline"], c["ours"]) for c in cells.values()]


def combined_row(first: dict[str, str], baseline: dict[int, float], ours: dict[int, float]) -> dict[str, str]:
    row = {k: first[k] for k in KEY}
    arms = {side: ArmSummary(first["env"], tuple(first[f"{side}_arm"].split("/")), tuple(sorted(scores)), dict(scores))
            for side, scores in (("baseline", baseline), ("ours", ours))}
    for side, arm in arms.items():
        row.update({f"{side}_mean": _num(arm.mean), f"{side}_std": _num(arm.std), f"{side}_n": str(arm.n),
                    f"{side}_scores": _scores(arm)})
    test = welch_test(arms["baseline"].values, arms["ours"].values, ALPHA)
    row.update(welch_t=_num(test.t), welch_p=_num(test.p), verdict=test.verdict, **{k: first.get(k, "") for k in PAPER})
    return row


def markdown(rows: list[dict[str, str]]) -> str:
    def arm(row, side):
        if not row[f"{side}_mean"]:
            return "n/a"
        if not row[f"{side}_std"]:
            return f"{float(row[f'{side}_mean']):.1f} (1 seed)"
        return f"{float(row[f'{side}_mean']):.1f} ± {float(row[f'{side}_std']):.1f}"

    lines = ["| env | column | baseline | ours | Welch p | verdict | seeds |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        p = f"{float(row['welch_p']):.2g}" if row["welch_p"] else "n/a"
        lines.append(f"| {row['env']} | {row['column']} ({row['baseline_arm']} → {row['ours_arm']}) | {arm(row, 'baseline')} "
                     f"| {arm(row, 'ours')} | {p} | {row['verdict']} | {row['baseline_n']} / {row['ours_n']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csvs", nargs="+", type=Path, help="table CSVs written by python -m runs tableN")
    parser.add_argument("--out", type=Path, default=None, help="write the pooled rows as CSV")
    args = parser.parse_args(argv)
    rows = pool([list(csv.DictReader(path.open())) for path in args.csvs])
    print(markdown(rows))
    if args.out:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(args.out, buffer.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
