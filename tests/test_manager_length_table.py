"""benchmarks/manager_length_table.py: worker scores by Manager snapshot, crossed seeds, diagnostics."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import manager_length_table  # noqa: E402


def write_run(folder: Path, manager: str, worker_seed: int, score: float, intent: str = "manager") -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"manager": manager, "seed": worker_seed}))
    (folder / "final.json").write_text(json.dumps({"algo": "bc", "intent": intent, "seed": worker_seed,
                                                   "normalized_score": score, "normalized_score_std": 1.0}))


def snapshot(seed: int, step: int) -> str:
    return f"/somewhere/runs/maze2d-medium-v1/manager/seed{seed}/snapshots/manager_step{step:07d}.pt"


SCORES = {(0, 20000): 17.8, (0, 40000): 42.8, (1, 20000): 75.7, (1, 40000): 52.5, (2, 20000): 30.0}
PLANNED_COSINE = {(0, 20000): 0.10, (0, 40000): 0.12, (1, 20000): 0.30, (1, 40000): 0.20, (2, 20000): 0.15}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for (seed, step), score in SCORES.items():
        write_run(tmp_path / f"bc/m{step // 1000}k/seed{seed}", snapshot(seed, step), seed, score)
    write_run(tmp_path / "bc/cross/manager0_bcseed1", snapshot(0, 20000), 1, 18.1)
    write_run(tmp_path / "bc/none/seed0", "", 0, -3.0, intent="none")  # not a Manager run: left out
    (tmp_path / "managers/seed0").mkdir(parents=True)
    (tmp_path / "managers/seed0/final.json").write_text(json.dumps({"mode": "manager", "steps": 40000}))
    lines = [json.dumps({"manager": f"managers/seed{seed}/snapshots/manager_step{step:07d}.pt",
                         "planned_vs_goal_path": {"mean_cosine": cosine},
                         "value_vs_grid_value_spearman": 0.8, "hindsight_vs_actual": {"mean_cosine": 0.99}})
             for (seed, step), cosine in PLANNED_COSINE.items()]
    (tmp_path / "intent_direction.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_rows_by_manager_step_with_mean_and_std_over_managers(results):
    table = manager_length_table.report(results).splitlines()
    row20 = next(line for line in table if line.startswith("| 20K |"))
    scores20 = [SCORES[0, 20000], SCORES[1, 20000], SCORES[2, 20000]]
    assert row20 == (f"| 20K | 17.8 | 75.7 | 30.0 | {np.mean(scores20):.1f} ± {np.std(scores20, ddof=1):.1f} |")
    row40 = next(line for line in table if line.startswith("| 40K |"))
    scores40 = [SCORES[0, 40000], SCORES[1, 40000]]  # seed 2 has no 40K run: a blank cell
    assert row40 == f"| 40K | 42.8 | 52.5 |  | {np.mean(scores40):.1f} ± {np.std(scores40, ddof=1):.1f} |"


def test_crossed_seeds_sit_beside_the_same_managers_own_run(results):
    assert "| 0, 20K | 1 | 18.1 | 17.8 |" in manager_length_table.report(results)


def test_diagnostics_rank_correlate_with_the_score(results):
    report = manager_length_table.report(results)
    keys = sorted(SCORES)
    rho, _ = spearmanr([SCORES[k] for k in keys], [PLANNED_COSINE[k] for k in keys])
    spearman_row = next(line for line in report.splitlines() if line.startswith("| Spearman"))
    assert f"| {rho:.2f} (p" in spearman_row and "5 Managers" in spearman_row
    assert spearman_row.count("n/a (the same for all)") == 2  # V and hindsight are constant here
    assert "| 1, 20K | 75.7 | 0.300 | 0.800 | 0.990 |" in report


def test_an_exported_manager_takes_its_step_from_the_final_json_beside_it(results, monkeypatch):
    write_run(results / "bc/export/seed3", str(results / "managers/seed0/manager.pt"), 3, 40.0)
    write_run(results / "bc/export_relative/seed4", "managers/seed0/manager.pt", 4, 41.0)
    monkeypatch.chdir(results.parent)  # a relative path is read from the results folder, not the cwd
    report = manager_length_table.report(results)
    assert "| 0, 40K | 3 | 40.0 | 42.8 |" in report and "| 0, 40K | 4 | 41.0 | 42.8 |" in report


def test_a_manager_path_without_seed_or_step_is_refused(tmp_path):
    write_run(tmp_path / "bc/odd/seed0", "/elsewhere/my_manager.pt", 0, 1.0)
    with pytest.raises(ValueError, match="manager_step<N>.pt"):
        manager_length_table.report(tmp_path)
