"""benchmarks/combine_table_csvs.py pools the per-seed scores of table CSVs from separate grid runs."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import combine_table_csvs  # noqa: E402

FIELDS = ["table", "env", "column", "baseline_arm", "ours_arm", "baseline_scores", "ours_scores",
          "paper_baseline_mean", "paper_baseline_std", "paper_ours_mean", "paper_ours_std"]


def write_table(path: Path, baseline: dict[int, float], ours: dict[int, float]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerow({"table": "2", "env": "maze2d-medium-v1", "column": "BC", "baseline_arm": "bc/none",
                         "ours_arm": "bc/manager", "paper_baseline_mean": "3", "paper_baseline_std": "5",
                         "paper_ours_mean": "70", "paper_ours_std": "7",
                         "baseline_scores": ";".join(f"{s}:{v}" for s, v in baseline.items()),
                         "ours_scores": ";".join(f"{s}:{v}" for s, v in ours.items())})
    return path


def test_pooled_cell_equals_the_statistics_of_all_seeds(tmp_path):
    first = write_table(tmp_path / "a.csv", {0: -4.0, 1: -4.2, 2: -0.4}, {0: 37.0, 1: 114.3, 2: 34.0})
    second = write_table(tmp_path / "b.csv", {3: 1.5}, {3: 80.0})
    out = tmp_path / "pooled.csv"
    assert combine_table_csvs.main([str(first), str(second), "--out", str(out)]) == 0
    (row,) = list(csv.DictReader(out.open()))
    baseline, ours = np.array([-4.0, -4.2, -0.4, 1.5]), np.array([37.0, 114.3, 34.0, 80.0])
    assert (row["baseline_n"], row["ours_n"]) == ("4", "4")
    assert float(row["ours_mean"]) == pytest.approx(ours.mean(), rel=1e-5)
    assert float(row["baseline_std"]) == pytest.approx(baseline.std(ddof=1), rel=1e-5)
    assert float(row["welch_p"]) == pytest.approx(stats.ttest_ind(ours, baseline, equal_var=False).pvalue, rel=1e-5)
    assert row["verdict"] == "gain" and row["paper_ours_mean"] == "70"


def test_a_seed_with_two_different_scores_is_refused(tmp_path):
    first = write_table(tmp_path / "a.csv", {0: -4.0, 1: -4.2}, {0: 37.0, 1: 114.3})
    same_seed = write_table(tmp_path / "b.csv", {1: -4.2}, {1: 99.0})
    with pytest.raises(ValueError, match="seed 1 of bc/manager .* two scores"):
        combine_table_csvs.main([str(first), str(same_seed)])


def test_printed_table_shows_a_single_seed_mean_without_a_test(tmp_path, capsys):
    only = write_table(tmp_path / "a.csv", {3: 4.7756}, {3: 81.1587})
    assert combine_table_csvs.main([str(only)]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "bc/none" in ln]
    assert "| 4.8 (1 seed) | 81.2 (1 seed) | n/a | n/a | 1 / 1 |" in line
