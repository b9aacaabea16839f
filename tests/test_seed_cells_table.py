"""benchmarks/seed_cells_table.py: per-seed final scores, Welch's p and the evaluations during training."""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest
from scipy.stats import ttest_ind

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import seed_cells_table  # noqa: E402

# (arm, seed) -> evaluations during training; the last one is the final score
EVALS = {("none", 0): {100_000: 5.0, 200_000: 10.0}, ("none", 1): {100_000: 1.0, 200_000: 2.0},
         ("none", 2): {100_000: 3.0, 200_000: 6.0},
         ("manager", 0): {100_000: 40.0}, ("manager", 1): {100_000: 55.5}, ("manager", 2): {100_000: 47.0}}


def write_cell(folder: Path, scores: dict[int, float]) -> None:
    folder.mkdir(parents=True)
    rows = ["step,actor_loss,eval_normalized_score"]
    for step in range(50_000, max(scores) + 1, 50_000):  # loss rows without an evaluation between them
        rows.append(f"{step},0.5,{scores.get(step, '')}")
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    final = {"normalized_score": scores[max(scores)], "normalized_score_std": 2.5, "steps": max(scores)}
    (folder / "final.json").write_text(json.dumps(final))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for (arm, seed), scores in EVALS.items():
        write_cell(tmp_path / arm / f"seed{seed}", scores)
    (tmp_path / "random" / "seed0").mkdir(parents=True)  # an unfinished cell (no final.json): left out
    return tmp_path


def test_final_table_gives_each_seed_and_the_mean_std_and_welch_p_over_seeds(results):
    table = seed_cells_table.final_table(seed_cells_table.read_cells(results))
    lines = table.splitlines()
    assert lines[0] == "| seed | no intents (200K steps) | Manager intents (100K steps) |"
    assert lines[2] == "| 0 | 10.0 ± 2.5 | 40.0 ± 2.5 |"
    assert lines[4] == "| 2 | 6.0 ± 2.5 | 47.0 ± 2.5 |"
    baseline, ours = [10.0, 2.0, 6.0], [40.0, 55.5, 47.0]
    p = ttest_ind(ours, baseline, equal_var=False).pvalue
    assert p < 0.05  # a significant gain: marked ↑
    assert lines[5] == (f"| mean ± std over seeds | 6.0 ± {statistics.stdev(baseline):.1f} (n 3) | "
                        f"47.5 ± {statistics.stdev(ours):.1f} (n 3) ↑, Welch p {p:.3g} |")
    assert "random" not in table


def test_evals_table_places_each_evaluation_under_its_step(results):
    lines = seed_cells_table.evals_table(seed_cells_table.read_cells(results)).splitlines()
    assert lines[0] == "| arm, seed | 100K | 200K |"
    assert lines[2] == "| no intents, seed 0 | 5.0 | 10.0 |"
    assert lines[5] == "| Manager intents, seed 0 | 40.0 |  |"


def test_a_folder_without_cells_is_refused_with_its_name(tmp_path):
    with pytest.raises(SystemExit, match="no finished cells"):
        seed_cells_table.read_cells(tmp_path)


def test_baseline_readings_compare_the_baseline_at_equal_steps_and_over_its_last_evaluations(results):
    for seed, score in ((0, 60.0), (1, 20.0), (2, 30.0)):  # a random arm, so the intent arms meet too
        write_cell(results / "random" / f"seed{seed + 3}", {100_000: score})
    cells = seed_cells_table.read_cells(results)
    lines = seed_cells_table.baseline_readings_table(cells, last=2).splitlines()
    assert lines[0] == "| no intents, read | its score | Manager intents (final) | random intents (final) |"
    manager, random_arm = [40.0, 55.5, 47.0], [60.0, 20.0, 30.0]
    at_100k = [5.0, 1.0, 3.0]  # the baseline where the intent arms stop, not its final 10, 2, 6
    p_manager = ttest_ind(manager, at_100k, equal_var=False).pvalue
    p_random = ttest_ind(random_arm, at_100k, equal_var=False).pvalue
    assert lines[2] == (f"| at 100K steps (where the intent arms stop) | 3.0 ± 2.0 (n 3) | "
                        f"47.5 ± {statistics.stdev(manager):.1f} (n 3) ↑, Welch p {p_manager:.3g} | "
                        f"36.7 ± {statistics.stdev(random_arm):.1f} (n 3), Welch p {p_random:.3g} |")
    last_two = [7.5, 1.5, 4.5]
    assert lines[3].startswith(f"| mean of its last 2 evaluations | 4.5 ± {statistics.stdev(last_two):.1f} (n 3) | ")
    assert f"Welch p {ttest_ind(manager, last_two, equal_var=False).pvalue:.3g}" in lines[3]
    between = ttest_ind(random_arm, manager, equal_var=False).pvalue
    assert lines[-1] == f"random intents against Manager intents (final scores): Welch p {between:.3g}"
    # --last 1: the baseline's last evaluation, which is its final score (10, 2, 6)
    assert seed_cells_table.baseline_readings_table(cells, last=1).splitlines()[3].startswith(
        "| mean of its last 1 evaluations | 6.0 ± 4.0 (n 3) | ")
    with pytest.raises(ValueError, match="--last 0"):
        seed_cells_table.baseline_readings_table(cells, last=0)
    cells["random"][3]["final"]["steps"] = 50_000  # intent arms of different lengths: no equal-steps reading
    rows = seed_cells_table.baseline_readings_table(cells, last=2).splitlines()
    assert [row.split(" | ")[0] for row in rows[2:4]] == ["| mean of its last 2 evaluations", ""]


def test_the_command_line_refuses_last_below_one_as_a_usage_error(results, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["seed_cells_table.py", str(results), "--last", "0"])
    with pytest.raises(SystemExit) as exit_info:
        seed_cells_table.main()
    assert exit_info.value.code == 2  # argparse's usage error, before any table is printed
    captured = capsys.readouterr()
    assert "--last 0" in captured.err and captured.out == ""
