"""benchmarks/metrics_divergence.py: relative differences of two runs' logged metrics, step by step."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import metrics_divergence  # noqa: E402


def write_metrics(path: Path, rows: list[str]) -> Path:
    path.write_text("step,critic,policy,eval_normalized_score,steps_per_s\n" + "\n".join(rows) + "\n")
    return path


def test_divergence_gives_largest_and_smallest_relative_difference_per_shared_step(tmp_path):
    run_a = metrics_divergence.read_metrics(write_metrics(tmp_path / "a.csv", [
        "100,2.0,4.0,,10.0", "200,1.1,3.0,50.0,12.0", "300,1.0,1.0,,9.0"]))
    run_b = metrics_divergence.read_metrics(write_metrics(tmp_path / "b.csv", [
        "100,2.0,4.0,,99.0", "200,1.0,4.0,40.0,5.0"]))
    rows = metrics_divergence.divergence(run_a, run_b)
    # step 100: equal losses, the timing column left out; step 200: critic 0.1, policy 0.25, eval 0.25
    assert [row[0] for row in rows] == [100, 200]  # step 300 only in run a
    assert rows[0] == (100, 0.0, 0.0, 2)
    step, largest, smallest, count = rows[1]
    assert (step, count) == (200, 3)
    assert largest == pytest.approx(0.25) and smallest == pytest.approx(0.1)
    table = metrics_divergence.divergence_table(rows).splitlines()
    assert table[3] == "| 200 | 0.25 | 0.1 | 3 |"


def test_relative_difference_at_zero_and_a_step_not_logged_by_both(tmp_path):
    assert metrics_divergence.relative_difference(0.0, 0.0) == 0.0
    assert math.isinf(metrics_divergence.relative_difference(1.0, 0.0))
    run = {100: {"critic": 1.0}}
    with pytest.raises(SystemExit, match=r"steps \[200\] are not logged by both runs"):
        metrics_divergence.divergence(run, run, steps=[200])
    with pytest.raises(SystemExit, match="no such file; pass a run folder's metrics.csv"):
        metrics_divergence.read_metrics(tmp_path / "missing.csv")
