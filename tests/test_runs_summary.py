"""python -m runs summary: final scores of hand-given run folders, seeds as lines, mean ± sample std,
Welch's test against the first line, unfinished runs named and left out, short distinct labels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import stats

from runs.__main__ import main as runs_main
from runs.run_groups import group_by_seed


def finished(run_dir: Path, score: float, seed: int, steps: int = 5000) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "final.json").write_text(json.dumps({"normalized_score": score, "seed": seed, "steps": steps,
                                                    "eval_episodes": 100}))
    return run_dir


def test_lines_of_seeds_with_welch_against_the_first(tmp_path, capsys):
    root = tmp_path / "runs" / "maze2d-medium-v1" / "bc"
    none = [finished(root / "none" / f"seed{s}", v, s) for s, v in enumerate([1.0, 3.0, 2.0])]
    manager = [finished(root / "manager" / f"seed{s}", v, s) for s, v in enumerate([40.0, 60.0, 50.0])]
    running = root / "random" / "seed0"
    running.mkdir(parents=True)
    (running / "config.yaml").write_text("steps: 5000\n")
    (running / "metrics.csv").write_text("step,loss\n500,1.0\n1000,0.5\n")
    args = ["summary", *map(str, none), *map(str, manager), str(running), str(none[0])]  # none[0] twice
    assert runs_main(args) == 0
    out, err = capsys.readouterr()
    rows = out.splitlines()[2:]
    p = stats.ttest_ind([40, 60, 50], [1, 3, 2], equal_var=False).pvalue
    assert rows == [
        "| bc/none | 3 | 5,000 | 100 | 2.0 ± 1.0 | baseline | 0: 1.0, 1: 3.0, 2: 2.0 |",
        f"| bc/manager | 3 | 5,000 | 100 | 50.0 ± {np.std([40, 60, 50], ddof=1):.1f} | p {p:.3g} ↑ | 0: 40.0, 1: 60.0, 2: 50.0 |"]
    assert f"not finished, left out: {running} (stopped, step 1,000 of 5,000 logged)" in err


def test_labels_are_the_shortest_distinct_tails(tmp_path):
    a = tmp_path / "runs" / "maze2d-umaze-v1" / "bc" / "none" / "seed0"
    b = tmp_path / "runs" / "maze2d-medium-v1" / "bc" / "none" / "seed0"
    c = tmp_path / "other" / "maze2d-medium-v1" / "iql_td_mpc" / "seed3"
    assert list(group_by_seed([a, b])) == ["maze2d-umaze-v1/bc/none", "maze2d-medium-v1/bc/none"]
    assert list(group_by_seed([a, c])) == ["bc/none", "maze2d-medium-v1/iql_td_mpc"]
    assert list(group_by_seed([c])) == ["maze2d-medium-v1/iql_td_mpc"]


def test_nothing_finished_and_missing_folders_are_named(tmp_path, capsys):
    running = tmp_path / "runs" / "maze2d-umaze-v1" / "bc" / "none" / "seed0"
    running.mkdir(parents=True)
    assert runs_main(["summary", str(running)]) == 2
    assert "none of these runs has finished" in capsys.readouterr().err
    assert runs_main(["summary", str(tmp_path / "nowhere")]) == 2
    assert "no run folder at" in capsys.readouterr().err


def test_an_unreadable_final_json_is_named_with_its_fix(tmp_path, capsys):
    run = finished(tmp_path / "runs" / "maze2d-umaze-v1" / "bc" / "none" / "seed0", 1.0, 0)
    (run / "final.json").write_text("{half")
    assert runs_main(["summary", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'final.json'} is unreadable" in err and "--overwrite, or leave the folder out" in err
