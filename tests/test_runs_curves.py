"""python -m runs curves: learning curves of hand-made metrics.csv files, mean ± std over seeds per line,
the default metric choice, and clear errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runs.__main__ import main as runs_main
from runs.curves import CurvesConfig, plot_curves


def write_metrics(run_dir: Path, header: list[str], rows: list[list]) -> Path:
    run_dir.mkdir(parents=True)
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    (run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    return run_dir


def worker_runs(root: Path) -> list[Path]:
    """bc/none and bc/manager, two seeds each; evaluations at steps 100 and 200 only."""
    header = ["step", "actor_loss", "eval_normalized_score", "steps_per_s"]
    scores = {("none", 0): (1.0, 3.0), ("none", 1): (3.0, 5.0), ("manager", 0): (10.0, 40.0), ("manager", 1): (20.0, 60.0)}
    dirs = []
    for (intent, seed), (first, last) in scores.items():
        rows = [[50, 0.9, None, 100], [100, 0.5, first, 90], [150, 0.4, None, 95], [200, 0.3, last, 99]]
        dirs.append(write_metrics(root / "maze2d-umaze-v1" / "bc" / intent / f"seed{seed}", header, rows))
    return dirs


def test_worker_curves_are_means_over_seeds_per_arm(tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert runs_main(["curves", *map(str, worker_runs(tmp_path / "runs")), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["eval_normalized_score bc/none: 4 at step 200 (mean of 2 seed(s))",
                       "eval_normalized_score bc/manager: 50 at step 200 (mean of 2 seed(s))"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = plot_curves(CurvesConfig(run_dirs=[str(d) for d in worker_runs(tmp_path / "again")],
                                      out=str(tmp_path / "again.png")))
    manager = curves["eval_normalized_score"]["bc/manager"]
    assert manager.steps.tolist() == [100, 200] and manager.mean.tolist() == [15.0, 50.0]
    assert np.allclose(manager.std, [np.std([10, 20], ddof=1), np.std([40, 60], ddof=1)])


def test_runs_without_evaluations_draw_their_losses(tmp_path):
    header = ["step", "consistency", "critic", "q_mean", "steps_per_s", "eval_wall_s"]
    run = write_metrics(tmp_path / "runs" / "maze2d-umaze-v1" / "manager" / "seed0", header,
                        [[100, 0.5, 2.0, 1.0, 20, 0], [200, 0.25, 1.0, 2.0, 21, 0]])
    curves = plot_curves(CurvesConfig(run_dirs=[str(run)], out=str(tmp_path / "m.png")))
    assert list(curves) == ["consistency", "critic", "q_mean"]  # not the step, throughput or timing columns
    assert list(curves["critic"]) == ["maze2d-umaze-v1/manager"]
    assert curves["critic"]["maze2d-umaze-v1/manager"].mean.tolist() == [2.0, 1.0]


def test_unknown_metric_and_missing_metrics_are_named(tmp_path, capsys):
    runs = worker_runs(tmp_path / "runs")
    assert runs_main(["curves", str(runs[0]), "--metrics", "critic", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no values of critic" in err and "their columns: actor_loss, eval_normalized_score, steps_per_s" in err
    assert runs_main(["curves", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y.png")]) == 2
    assert "no metrics.csv in" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()
    with pytest.raises(SystemExit):  # argparse: at least one folder
        runs_main(["curves"])
