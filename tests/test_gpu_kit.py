"""The GPU runbook's device-side script (benchmarks/gpu/stage.sh, docs/gpu.md) works, tried on the CPU.

Device time is scarce: a broken flag in the kit would cost a lent session its minutes. This runs the
`train` stage exactly as on the device (DEVICE=cpu), with a smoke BC run, and checks that the run
lands in .gpu_runs/ and that the returned parts rebuild it; likewise `session` and `score` (a flat
agent's steps fitted to the time left, benchmarks/gpu/fit_steps.py) with the speed stage skipped.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "benchmarks" / "gpu" / "stage.sh"
sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
import fit_steps  # noqa: E402


def run_stage(args, cwd: Path, out: Path, data_dir: Path, **env_vars: str) -> subprocess.CompletedProcess:
    bin_dir = cwd / "bin"
    bin_dir.mkdir(exist_ok=True)
    python3 = bin_dir / "python3"  # the kit calls python3, as on the GPU image: this interpreter here
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python3.chmod(0o755)
    env = dict(os.environ, OUT=str(out), DEVICE="cpu", D4RL_DATASET_DIR=str(data_dir),
               PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT), **env_vars)
    return subprocess.run(["bash", str(STAGE), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_train_stage_runs_a_worker_chunk_and_returns_its_run_folder(data_dir, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir(), out.mkdir()
    result = run_stage(["train", "python3", "-m", "corl", "bc", "--env", "maze2d-umaze-v1", "--intent", "none",
                        "--profile", "smoke"], work, out, data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    final = work / ".gpu_runs" / "maze2d-umaze-v1" / "bc" / "none" / "seed0" / "final.json"
    assert final.exists()
    assert "normalized_score" in (out / "train.log").read_text()
    parts = sorted(out.glob("gpu_runs.tar.part*"))
    assert parts, "no parts returned"
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        names = tar.getnames()
    assert ".gpu_runs/maze2d-umaze-v1/bc/none/seed0/final.json" in names
    # a finished run comes back without its resume state; its results also come alone, weightless
    assert (final.parent / "checkpoint.pt").exists() and ".gpu_runs/maze2d-umaze-v1/bc/none/seed0/checkpoint.pt" not in names
    with tarfile.open(out / "gpu_results.tgz") as tar:
        results = tar.getnames()
    assert ".gpu_runs/maze2d-umaze-v1/bc/none/seed0/final.json" in results
    assert not [name for name in results if name.endswith(".pt")]


def test_train_stage_runs_a_manager_chunk(data_dir, tmp_path):
    """The Manager's argparse CLI spells the run folder and progress flags differently from pyrallis."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir(), out.mkdir()
    result = run_stage(["train", "python3", "-m", "manager", "train", "--mode", "manager", "--env", "maze2d-umaze-v1",
                        "--profile", "smoke", "--steps", "50"], work, out, data_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (work / ".gpu_runs" / "maze2d-umaze-v1" / "manager" / "seed0" / "manager.pt").exists()


def test_train_stage_stops_a_manager_chunk_at_its_time_limit(data_dir, tmp_path):
    """`train` hands $CHUNK_TIME_LIMIT_S to the Manager's --time-limit-s: the call stops at a checkpoint."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir(), out.mkdir()
    result = run_stage(["train", "python3", "-m", "manager", "train", "--mode", "manager", "--env", "maze2d-umaze-v1",
                        "--profile", "smoke", "--steps", "1000000", "--checkpoint-every", "100"], work, out, data_dir,
                       CHUNK_TIME_LIMIT_S="2")
    assert result.returncode == 0, result.stdout + result.stderr
    stopped = re.search(r"stopped at step (\d+)/1000000", (out / "train.log").read_text())
    assert stopped and int(stopped.group(1)) % 100 == 0, result.stdout
    run = work / ".gpu_runs" / "maze2d-umaze-v1" / "manager" / "seed0"
    assert (run / "checkpoint.pt").exists() and not (run / "manager.pt").exists()
    parts = sorted(out.glob("gpu_runs.tar.part*"))  # an unfinished run's checkpoint comes back: it resumes
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        assert ".gpu_runs/maze2d-umaze-v1/manager/seed0/checkpoint.pt" in tar.getnames()


def test_session_stage_trains_for_what_is_left_of_its_budget(data_dir, tmp_path):
    """`session` (speed measurements skipped here) gives the training command the budget's remainder."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir(), out.mkdir()
    manager = ["python3", "-m", "manager", "train", "--mode", "manager", "--env", "maze2d-umaze-v1",
               "--profile", "smoke", "--steps", "50"]
    result = run_stage(["session", *manager], work, out, data_dir, SESSION_SPEED="0", SESSION_BUDGET_S="200")
    assert result.returncode == 0, result.stdout + result.stderr
    left = int(re.search(r"(\d+) s left for", (out / "session.txt").read_text()).group(1))
    assert 60 <= left <= 140  # 200 s less the time spent before training (imports: seconds) and the 60 s kept
    run = work / ".gpu_runs" / "maze2d-umaze-v1" / "manager" / "seed0"
    assert f"time_limit_s: {left}" in (run / "config.yaml").read_text()
    assert (run / "manager.pt").exists() and sorted(out.glob("gpu_runs.tar.part*"))
    # too small a budget trains nothing (and says so); a worker command is refused (it stops by steps)
    short = run_stage(["session", *manager], work, out, data_dir, SESSION_SPEED="0", SESSION_BUDGET_S="100")
    assert short.returncode == 0 and "no training this call" in short.stdout
    worker = run_stage(["session", "python3", "-m", "corl", "bc"], work, out, data_dir, SESSION_SPEED="0")
    assert worker.returncode == 2 and "--chunk_steps" in worker.stderr


def test_train_stage_runs_a_grid_across_calls(data_dir, tmp_path):
    """A grid cut by the call's time limit stops its cells cleanly; the same call again resumes it."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir(), out.mkdir()
    grid = ["train", "python3", "-m", "runs", "table1", "--envs", "maze2d-umaze-v1", "--seeds", "0,1",
            "--profile", "smoke", "--stack-seeds"]
    # the first stacked job (two seeds of td_mpc: training, then MPC scoring) takes about 20 s here
    cut = run_stage(grid, work, out, data_dir, CHUNK_TIME_LIMIT_S="12")
    assert cut.returncode == 124, cut.stdout + cut.stderr  # timeout's status: stopped by the time limit
    assert "[grid] interrupted" in (out / "train.log").read_text() and sorted(out.glob("gpu_runs.tar.part*"))
    manifests = {p: json.loads(p.read_text()) for p in (work / ".gpu_runs").glob("maze2d-umaze-v1/*/seed*/manifest.json")}
    # whenever the limit struck (on a slow machine even as the first job started), no cell is left "running"
    assert all(m["status"] in ("done", "failed") for m in manifests.values()), manifests
    stopped = [p for p, m in manifests.items() if "interrupted" in m.get("note", "")]
    assert all(manifests[p]["status"] == "failed" for p in stopped)
    whole = run_stage(grid, work, out, data_dir)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    # the cells the cut call finished (on a fast machine, some do) count as done before
    finished_in_cut = sum(m["status"] == "done" for m in manifests.values())
    summary = [line for line in (out / "train.log").read_text().splitlines()
               if re.fullmatch(r"\[grid\] \d+ [a-z ]+(, \d+ [a-z ]+)*", line)][-1]  # "[grid] 3 done, 1 done before"
    counts = {outcome: int(n) for n, outcome in re.findall(r"(\d+) ([a-z ]+)", summary)}
    assert counts == {k: v for k, v in {"done": 4 - finished_in_cut, "done before": finished_in_cut}.items() if v}, summary
    assert (work / ".gpu_runs" / "table1.md").is_file()
    for path in stopped:  # run again and finished: stacked when both seeds of its mode were stopped, else alone
        resumed = json.loads(path.read_text())
        both = sum(other.parent.parent == path.parent.parent for other in stopped) == 2
        expected = "--seeds 0,1" if both else f"--seed {path.parent.name.removeprefix('seed')} "
        assert (resumed["status"], resumed["attempt"]) == ("done", 2) and expected in resumed["command_line"] + " "


def test_fit_steps_leaves_time_for_the_evaluation():
    """Whole checkpoints of training at 85% of the measured rate in what the evaluation and start-up leave."""
    speed = {"rows": [{"mode": "iql_td_mpc", "profile": "paper", "updates_per_s": 100.0, "plan_ms_100_envs": 20.0},
                      {"mode": "manager", "profile": "paper", "updates_per_s": 1.0, "plan_ms_100_envs": 1.0}]}
    # maze2d-medium: 600 steps per episode; 100 episodes on 100 envs = one round of 600 x (20 + 10) ms = 18 s
    steps, estimate = fit_steps.fit_steps(speed, "iql_td_mpc", "paper", "maze2d-medium-v1", 300.0, 100, 100, 1000)
    assert estimate["evaluation_s"] == pytest.approx(18.0)
    assert estimate["train_s"] == pytest.approx(300 - 1.5 * 18 - 30)  # 243 s
    assert steps == 20_000  # 0.85 x 100 x 243 = 20,655, rounded down to whole checkpoints
    assert estimate["time_limit_s"] == 243 + 30  # the guard: the training time plus slack
    # 200 episodes on 100 envs: two rounds of evaluation
    _, two_rounds = fit_steps.fit_steps(speed, "iql_td_mpc", "paper", "maze2d-medium-v1", 300.0, 200, 100, 1000)
    assert two_rounds["evaluation_s"] == pytest.approx(36.0)
    # nothing fits: zero steps, not a negative count
    assert fit_steps.fit_steps(speed, "iql_td_mpc", "paper", "maze2d-medium-v1", 40.0, 100, 100, 1000)[0] == 0
    with pytest.raises(SystemExit, match="no row for mode 'td_mpc'"):
        fit_steps.fit_steps(speed, "td_mpc", "paper", "maze2d-medium-v1", 300.0, 100, 100, 1000)
    assert fit_steps.command_option(["-m", "manager", "--mode=td_mpc"], "--mode") == "td_mpc"
    assert fit_steps.command_option(["--env", "x"], "--profile", "paper") == "paper"


def test_score_stage_trains_the_fitted_steps_then_scores(data_dir, tmp_path):
    """`score` sizes a flat agent's --steps from a speed file and ends with its evaluation (final.json)."""
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir(), out.mkdir()
    speed = tmp_path / "speed.json"
    speed.write_text(json.dumps({"rows": [{"mode": "iql_td_mpc", "profile": "smoke", "updates_per_s": 10.0,
                                           "plan_ms_100_envs": 5.0}]}))
    flat = ["python3", "-m", "manager", "train", "--mode", "iql_td_mpc", "--env", "maze2d-umaze-v1",
            "--profile", "smoke", "--checkpoint-every", "100"]
    result = run_stage(["score", *flat], work, out, data_dir, SESSION_SPEED="0", SPEED_JSON=str(speed),
                       SESSION_BUDGET_S="110")
    assert result.returncode == 0, result.stdout + result.stderr
    fitted = json.loads((out / "fit.json").read_text())
    # 110 - 15 s less the seconds spent importing (a few here, more on a slow machine), less 30 s start-up
    # and the evaluation's 1.5 x 4.5 s: at most 0.85 x 10 x 58 = 493 steps, whole checkpoints of 100
    assert 100 <= fitted["steps"] <= 400 and fitted["steps"] % 100 == 0, fitted
    final = json.loads((work / ".gpu_runs" / "maze2d-umaze-v1" / "iql_td_mpc" / "seed0" / "final.json").read_text())
    assert final["steps"] == fitted["steps"] and "normalized_score" in final
    run = work / ".gpu_runs" / "maze2d-umaze-v1" / "iql_td_mpc" / "seed0"
    assert f"time_limit_s: {fitted['time_limit_s']}" in (run / "config.yaml").read_text()
    assert sorted(out.glob("gpu_runs.tar.part*"))
    # a command with its own --steps, or a Manager's, is refused before any work
    own_steps = run_stage(["score", *flat, "--steps", "10"], work, out, data_dir, SESSION_SPEED="0")
    assert own_steps.returncode == 2 and "must not give --steps" in own_steps.stderr
    manager = run_stage(["score", "python3", "-m", "manager", "train", "--mode", "manager", "--env", "maze2d-umaze-v1",
                         "--profile", "smoke"], work, out, data_dir, SESSION_SPEED="0", SPEED_JSON=str(speed))
    assert manager.returncode == 1 and "only the flat agents" in manager.stdout + manager.stderr
    unmeasured = run_stage(["score", *flat], work, out, data_dir, SESSION_SPEED="0", SPEED_JSON=str(tmp_path / "none.json"))
    assert unmeasured.returncode == 1 and "no speed figures" in unmeasured.stderr


def test_a_call_with_more_than_eight_files_packs_its_logs(tmp_path):
    """The device returns at most 8 files: past that the stage packs *.log and *.txt into logs.tgz."""
    out = tmp_path / "out"
    out.mkdir()
    names = [f"part{i}.log" for i in range(6)] + ["session.txt", "speed.json", "gpu_runs.tar.partaa"]
    for name in names:
        (out / name).write_text(name)
    result = run_stage(["nonsense"], tmp_path, out, tmp_path)  # packs on every exit, a failed one too
    assert result.returncode == 2
    assert sorted(p.name for p in out.iterdir()) == ["gpu_runs.tar.partaa", "logs.tgz", "speed.json"]
    with tarfile.open(out / "logs.tgz") as tar:
        assert sorted(Path(n).name for n in tar.getnames()) == sorted(n for n in names if n.endswith((".log", ".txt")))


def test_workers_stage_times_the_compiled_worker_updates(tmp_path):
    """`workers ARGS`: benchmarks/worker_speed.py --compile ARGS into $OUT (aot_eager here: the CPU)."""
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "benchmarks").symlink_to(ROOT / "benchmarks")  # the stage runs from a repo root
    result = run_stage(["workers", "--algos", "bc,cql", "--updates", "2", "--rounds", "1", "--compile", "aot_eager",
                        "--compile-mode", "reduce-overhead"], tmp_path, out, tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "worker_compile_gpu.json").read_text())
    assert data["compile_backend"] == "aot_eager" and data["compile_mode"] == "reduce-overhead"
    assert set(data["results"]) == {"bc", "cql"}
    assert all(row["compiled_updates_per_s"] > 0 and row["compiled_max_param_gap"] < 1e-5
               for row in data["results"].values())
    assert "compiled_over_eager" in (out / "worker_compile.log").read_text()


def test_unknown_stage_is_an_error(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = run_stage(["nonsense"], tmp_path, out, tmp_path)
    assert result.returncode == 2
    assert "unknown stage 'nonsense'" in result.stderr


@pytest.mark.parametrize("script", ["stage.sh", "prepare.sh"])
def test_kit_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / "gpu" / script)]).returncode == 0
