"""`python -m tasks` as a user runs it (subprocesses)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, tmp_path, check=True):
    env = dict(os.environ, HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    env.pop("D4RL_DATASET_DIR", None)
    proc = subprocess.run([sys.executable, "-m", "tasks", *map(str, args)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_generate_info_evaluate(tmp_path):
    data = tmp_path / "d"
    out = run_cli("generate", "maze2d-umaze-v1", "--steps", 2000, "--seed", 1, "--data-dir", data,
                  "--no-progress", tmp_path=tmp_path)
    assert (data / "maze2d-umaze-sparse-v1.hdf5").is_file() and "2000 steps" in out.stdout
    again = run_cli("generate", "maze2d-umaze-v1", "--data-dir", data, tmp_path=tmp_path, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    skip = run_cli("generate", "maze2d-umaze-v1", "--data-dir", data, "--skip-existing", tmp_path=tmp_path)
    assert "nothing to do" in skip.stdout

    info = run_cli("info", "maze2d-umaze-v1", "--data-dir", data, tmp_path=tmp_path)
    assert "steps: 2000" in info.stdout and "seed=1" in info.stdout and "REF_MAX: 161.86" in info.stdout

    ev = run_cli("evaluate", "maze2d-umaze-v1", "--policy", "random", "--episodes", 4, "--no-progress",
                 tmp_path=tmp_path)
    last = ev.stdout.strip().splitlines()[-1]
    assert last.startswith("normalized_score=")
    run = tmp_path / "runs" / "maze2d-umaze-v1" / "eval-random" / "seed0"
    final = json.loads((run / "final.json").read_text())
    assert float(last.split("=")[1]) == round(final["normalized_score"], 4)
    assert len((run / "metrics.csv").read_text().splitlines()) == 5 and (run / "config.yaml").is_file()
    cached = run_cli("evaluate", "maze2d-umaze-v1", "--policy", "random", "--episodes", 4, tmp_path=tmp_path)
    assert "already complete" in cached.stderr and cached.stdout.strip().splitlines()[-1] == last


def test_bad_input_is_one_clear_line(tmp_path):
    bad = run_cli("evaluate", "antmaze-umaze-v3", "--episodes", 2, tmp_path=tmp_path, check=False)
    assert bad.returncode == 2 and "unknown env name" in bad.stderr and "maze2d-umaze-v1" in bad.stderr
    assert "Traceback" not in bad.stderr
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "maze2d-medium-sparse-v1.hdf5").write_text("garbage")
    corrupt = run_cli("info", "maze2d-medium-v1", "--data-dir", tmp_path / "d", tmp_path=tmp_path, check=False)
    assert corrupt.returncode == 2 and "maze2d-medium-sparse-v1.hdf5" in corrupt.stderr
    assert "Traceback" not in corrupt.stderr


def test_help_lists_every_command(tmp_path):
    out = run_cli("--help", tmp_path=tmp_path).stdout
    for cmd in ("list", "info", "generate", "evaluate"):
        assert cmd in out
    help_eval = run_cli("evaluate", "--help", tmp_path=tmp_path).stdout
    assert "--d4rl-protocol" in help_eval and "--episodes" in help_eval
