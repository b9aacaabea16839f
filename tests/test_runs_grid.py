"""The paper's grids (python -m runs): expansion, skip / resume, aggregation and Welch's test with
known answers, the reports, a smoke grid through the real entry points, and the submitit engine."""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from runs import catalog
from runs import manifest as m
from runs.__main__ import main as runs_main
from runs.aggregate import GAIN, LOSS, NO_CHANGE, NOT_TESTED, aggregate, learning_curve, welch_test
from runs.claims import CellClaims, claimed_elsewhere, in_training
from runs.engines import LocalEngine
from runs.execute import CellJob
from runs.grid import GridOptions, expand_grid, parse_seeds, resolve_algos, resolve_envs, stacked_command
from runs.paper import published, published_numbers
from runs.plots import write_plot
from runs.report import profile_warning, write_reports
from runs.scheduler import BLOCKED, DONE, FAILED, SKIPPED, UNAVAILABLE, run_grid
from runs.tables import ABLATION_WORKERS, PAPER_DATASETS, PAPER_WORKERS, TABLES, get_table

ROOT = Path(__file__).resolve().parents[1]
UMAZE = "maze2d-umaze-v1"

# A stand-in for a cell's command: logs its start and end to an events file, sleeps, then either
# fails with an `error:` line or writes final.json (argv: run_dirs score sleep_s exit_code events
# [finished_first]; run_dirs: one, or a stacked job's comma-separated; finished_first: how many of
# them write final.json before the failure).
FAKE_CELL = r"""
import json, pathlib, sys, time
run_dirs, score, sleep_s, code, events = [pathlib.Path(p) for p in sys.argv[1].split(",")], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
t = time.time()
with open(events, "a") as f: f.writelines(f"start {run_dir} {t}\n" for run_dir in run_dirs)
print("fake cell running", *run_dirs, flush=True)
time.sleep(sleep_s)
finished_first = int(sys.argv[6]) if len(sys.argv) > 6 else 0  # run folders that finish before a failure
for run_dir in run_dirs[:finished_first if code else None]:
    (run_dir / "final.json").write_text(json.dumps({"normalized_score": score, "device": "cpu", "profile": "smoke", "steps": 10}))
if code:
    print("error: fake failure", file=sys.stderr)
    sys.exit(code)
t = time.time()
with open(events, "a") as f: f.writelines(f"end {run_dir} {t}\n" for run_dir in run_dirs)
"""


def fake(cell, events: Path, score: float = 1.0, sleep_s: float = 0.0, code: int = 0):
    return dataclasses.replace(cell, command=(sys.executable, "-c", FAKE_CELL, str(cell.run_dir), str(score),
                                              str(sleep_s), str(code), str(events)))


def job_for(cells) -> CellJob:
    """The job of one cell or of a stack group (the first cell's fake command over all run folders)."""
    cells = cells if isinstance(cells, tuple) else (cells,)
    first = cells[0]
    command = list(first.command)
    command[3] = ",".join(str(c.run_dir) for c in cells)
    return CellJob(first.key, tuple(command), str(first.run_dir), str(ROOT), {}, {"device": "cpu"},
                   {"commit": "abcdef1234567", "dirty": False}, "local", heartbeat_s=0.2,
                   stacked_with=tuple((c.key, str(c.run_dir)) for c in cells[1:]))


def read_events(path: Path) -> dict[tuple[str, str], float]:
    out = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        what, run_dir, t = line.split()
        out[(what, Path(run_dir).relative_to(path.parent / "runs").as_posix())] = float(t)
    return out


def umaze_grid(tmp_path: Path, seeds=(0, 1), stack_seeds: bool = False):
    opt = GridOptions(profile="smoke", device="cpu", runs_dir=str(tmp_path / "runs"), stack_seeds=stack_seeds)
    return {c.key: c for c in expand_grid(get_table("table2"), (UMAZE,), ("bc",), seeds, opt)}


@pytest.fixture
def today(monkeypatch):
    """Pin what exists (maze2d tasks, the bc worker) so the tests do not change as workers land."""
    monkeypatch.setattr(catalog, "known_tasks", lambda: frozenset({UMAZE, "maze2d-medium-v1", "maze2d-large-v1"}))
    monkeypatch.setattr(catalog, "worker_names", lambda: (("bc", "bc_10"), ("awac", "iql", "td3_bc", "cql", "dt")))


# --- grid expansion --------------------------------------------------------------------------------------
def test_table2_expansion_counts_dependencies_commands(today):
    opt = GridOptions(profile="smoke", device="cpu", runs_dir="R", data_dir="D", python="PY")
    cells = expand_grid(get_table("table2"), (UMAZE, "antmaze-umaze-v2"), ("bc", "awac"), (0, 1), opt)
    assert len(cells) == 2 * 2 * (1 + 2 * 2)
    assert [c.kind for c in cells[:4]] == ["manager"] * 4 and all(c.kind == "worker" for c in cells[4:])
    by_key = {c.key: c for c in cells}
    assert len(by_key) == len(cells)
    ours, base = by_key[f"{UMAZE}/bc/manager/seed1"], by_key[f"{UMAZE}/bc/none/seed1"]
    assert ours.depends_on == (f"{UMAZE}/manager/seed1",) and base.depends_on == ()
    assert ours.run_dir == Path("R", UMAZE, "bc", "manager", "seed1")
    assert ours.command == ("PY", "-m", "corl", "bc", "--env", UMAZE, "--seed", "1", "--intent", "manager",
                            "--profile", "smoke", "--device", "cpu", "--runs_dir", "R", "--data_dir", "D")
    assert by_key[f"{UMAZE}/manager/seed0"].command == (
        "PY", "-m", "manager", "train", "--mode", "manager", "--env", UMAZE, "--seed", "0", "--profile", "smoke",
        "--device", "cpu", "--runs-dir", "R", "--data-dir", "D")
    unavailable = {c.key: c.unavailable for c in cells if c.unavailable}
    assert len(unavailable) == 10 + 4  # every antmaze cell, awac on maze2d
    assert unavailable["antmaze-umaze-v2/manager/seed0"] == "task antmaze-umaze-v2 not in the task layer yet"
    assert unavailable[f"{UMAZE}/awac/manager/seed1"] == "worker awac not implemented yet"


def test_default_grids_follow_the_paper():
    opt = GridOptions()
    sizes = {}
    for name, table in TABLES.items():
        envs, algos = resolve_envs(table, ""), resolve_algos(table, "")
        cells = expand_grid(table, envs, algos, (0, 1, 2, 3, 4), opt)
        sizes[name] = (len(envs), algos, len(cells))
    assert sizes["table1"] == (14, (), 14 * 5 * 2)
    assert sizes["table2"] == (14, PAPER_WORKERS, 14 * 5 * (1 + 6 * 2))
    assert sizes["table3"] == (7, ABLATION_WORKERS, 7 * 5 * 4 * 2)
    t1 = expand_grid(TABLES["table1"], (UMAZE,), (), (3,), opt)
    assert [c.arm for c in t1] == [("td_mpc",), ("iql_td_mpc",)] and all(not c.depends_on for c in t1)
    t3 = expand_grid(TABLES["table3"], ("halfcheetah-medium-v2",), ("bc",), (0,), opt)
    assert [c.arm for c in t3] == [("bc", "none"), ("bc", "random")]  # no Manager for random intents
    t2 = expand_grid(TABLES["table2"], ("halfcheetah-medium-v2",), ("bc",), (0,), opt)
    assert t2[1].run_dir == t3[0].run_dir  # the baseline run is shared by tables 2 and 3


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_cell_commands_are_the_makefile_commands():
    opt = GridOptions(profile="smoke", device="cpu", python="PY")
    cells = {c.key: c for c in expand_grid(get_table("table2"), (UMAZE,), ("bc",), (1,), opt)
             + expand_grid(get_table("table1"), (UMAZE,), (), (1,), opt)}
    common = ["PYTHON=PY", f"ENV={UMAZE}", "SEED=1", "PROFILE=smoke", "DEVICE=cpu"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "SEEDS"}

    def make_n(*args: str) -> tuple[str, ...]:
        out = subprocess.run(["make", "-s", "-n", *args, *common], cwd=ROOT, capture_output=True, text=True,
                             env=env, check=True).stdout
        return tuple(shlex.split(out.replace("\\\n", " ")))  # a recipe continued with a backslash

    # the grid adds only --runs-dir / --runs_dir (here the default) to what make runs
    assert make_n("manager") == cells[f"{UMAZE}/manager/seed1"].command[:-2]
    assert make_n("flat", "MODE=td_mpc") == cells[f"{UMAZE}/td_mpc/seed1"].command[:-2]
    assert make_n("worker", "ALGO=bc", "INTENT=manager") == cells[f"{UMAZE}/bc/manager/seed1"].command[:-2]
    # FLAGS= hands the command any other flag, last (so it wins over the variables' flags)
    flagged = make_n("worker", "ALGO=bc", "FLAGS=--normalize false --batch_size 512")
    assert flagged[-4:] == ("--normalize", "false", "--batch_size", "512")
    assert make_n("manager", "FLAGS=--set horizon=3")[-2:] == ("--set", "horizon=3")
    # SEEDS= on the command line: the Manager's seeds in one process (manager train --seeds)
    stacked = make_n("manager", "SEEDS=0-2")
    assert stacked[stacked.index("--seeds") + 1] == "0-2" and "--seed" not in stacked
    # a stack group's one command is `make manager SEEDS=...`'s; STACK_SEEDS=1 asks the grid for it
    group = [c for c in expand_grid(get_table("table2"), (UMAZE,), ("bc",), (0, 1, 2),
                                    dataclasses.replace(opt, stack_seeds=True)) if c.kind == "manager"]
    assert make_n("manager", "SEEDS=0,1,2") == stacked_command(group, opt)[:-2]
    assert "--stack-seeds" in make_n("table1", "STACK_SEEDS=1") and "--stack-seeds" not in make_n("table1")
    # COMPILE=1: the grid's Manager, flat and worker cells are `make manager|flat|worker COMPILE=1`'s
    # commands
    compiled = dataclasses.replace(opt, compile=True)
    compiled_cells = {c.key: c for c in expand_grid(get_table("table2"), (UMAZE,), ("bc", "cql"), (1,), compiled)
                      + expand_grid(get_table("table1"), (UMAZE,), (), (1,), compiled)}
    assert make_n("manager", "COMPILE=1") == compiled_cells[f"{UMAZE}/manager/seed1"].command[:-2]
    assert make_n("flat", "MODE=iql_td_mpc", "COMPILE=1") == compiled_cells[f"{UMAZE}/iql_td_mpc/seed1"].command[:-2]
    assert make_n("worker", "ALGO=bc", "INTENT=manager", "COMPILE=1") == compiled_cells[f"{UMAZE}/bc/manager/seed1"].command[:-2]
    assert "--compile true" in " ".join(compiled_cells[f"{UMAZE}/bc/manager/seed1"].command)
    assert make_n("worker", "ALGO=cql", "INTENT=none", "COMPILE=1") == compiled_cells[f"{UMAZE}/cql/none/seed1"].command[:-2]
    assert "--compile" not in cells[f"{UMAZE}/bc/manager/seed1"].command
    assert "--compile" in stacked_command(group, compiled) and "--compile" not in stacked_command(group, opt)
    assert "--compile" in make_n("table2", "COMPILE=1") and "--compile" not in make_n("table2")
    # WANDB=1 likewise: the grid's cells are `make manager|flat|worker WANDB=1`'s commands
    mirrored = dataclasses.replace(opt, wandb=True)
    mirrored_cells = {c.key: c for c in expand_grid(get_table("table2"), (UMAZE,), ("bc",), (1,), mirrored)
                      + expand_grid(get_table("table1"), (UMAZE,), (), (1,), mirrored)}
    assert make_n("manager", "WANDB=1") == mirrored_cells[f"{UMAZE}/manager/seed1"].command[:-2]
    assert make_n("flat", "MODE=td_mpc", "WANDB=1") == mirrored_cells[f"{UMAZE}/td_mpc/seed1"].command[:-2]
    assert make_n("worker", "ALGO=bc", "INTENT=manager", "WANDB=1") == mirrored_cells[f"{UMAZE}/bc/manager/seed1"].command[:-2]
    assert "--wandb" in make_n("table2", "WANDB=1") and "--wandb" not in make_n("table2")
    assert all("--wandb" not in c.command for c in cells.values())
    # COMPILE_MODE=reduce-overhead (CUDA graphs) rides along with COMPILE=1, in the cells and in make alike
    graphed = dataclasses.replace(compiled, compile_mode="reduce-overhead")
    graphed_manager = next(c for c in expand_grid(get_table("table2"), (UMAZE,), ("bc",), (1,), graphed)
                           if c.kind == "manager")
    assert "--compile --compile-mode reduce-overhead" in " ".join(graphed_manager.command)
    graphed_bc = next(c for c in expand_grid(get_table("table2"), (UMAZE,), ("bc",), (1,), graphed) if c.kind == "worker")
    assert "--compile true --compile_mode reduce-overhead" in " ".join(graphed_bc.command)
    assert make_n("worker", "ALGO=bc", "INTENT=" + graphed_bc.arm[1], "COMPILE=1",
                  "COMPILE_MODE=reduce-overhead") == graphed_bc.command[:-2]
    assert make_n("manager", "COMPILE=1", "COMPILE_MODE=reduce-overhead") == graphed_manager.command[:-2]
    assert "--compile-mode" not in make_n("manager", "COMPILE_MODE=reduce-overhead")  # no mode without COMPILE=1
    assert "--compile --compile-mode reduce-overhead" in " ".join(make_n("table2", "COMPILE=1",
                                                                         "COMPILE_MODE=reduce-overhead"))


def test_unknown_names_are_clear_errors(capsys):
    with pytest.raises(ValueError, match="table1, table2, table3"):
        get_table("table4")
    assert runs_main(["curvez", "runs/x"]) == 2
    assert "unknown command 'curvez'; choose one of table1, table2, table3, curves, summary" in capsys.readouterr().err
    t2, t3 = get_table("table2"), get_table(3)
    with pytest.raises(ValueError, match="unknown env 'maze2d-umaz-v1'"):
        resolve_envs(t2, "maze2d-umaz-v1")
    with pytest.raises(ValueError, match="unknown worker 'bcq'"):
        resolve_algos(t2, "bc,bcq")
    with pytest.raises(ValueError, match="flat agents"):
        resolve_algos(get_table("table1"), "bc")
    with pytest.raises(ValueError, match="covers no maze2d"):
        resolve_envs(t3, "maze2d")
    assert resolve_envs(t3, "halfcheetah") == ("halfcheetah-medium-v2", "halfcheetah-medium-replay-v2",
                                                "halfcheetah-medium-expert-v2")
    assert parse_seeds("0-2,4,1") == (0, 1, 2, 4)
    with pytest.raises(ValueError, match="--seeds"):
        parse_seeds("zero")
    with pytest.raises(ValueError, match="runs backwards; write 1-3"):
        parse_seeds("3-1")
    assert runs_main(["table2", "--envs", "nowhere-v0", "--dry-run"]) == 2
    assert "unknown env 'nowhere-v0'" in capsys.readouterr().err
    assert runs_main(["table2", "--compile-mode", "reduce-overhead", "--dry-run"]) == 2
    assert "--compile-mode reduce-overhead needs --compile" in capsys.readouterr().err
    for flag, value, message in (("--alpha", "2", "between 0 and 1"), ("--jobs", "0", "--jobs must be at least 1"),
                                 ("--timeout-min", "0", "--timeout-min must be at least 1")):
        assert runs_main(["table2", "--envs", "maze2d-umaze-v1", flag, value, "--dry-run"]) == 2
        assert message in capsys.readouterr().err
    assert runs_main(["table9"]) == 2
    assert "unknown command 'table9'" in capsys.readouterr().err


def dry_run_line(out: str, key: str) -> str:
    """The line of --dry-run's output that names cell `key` (state, key, notes)."""
    return next(line for line in out.splitlines() if line.split()[1:2] == [key])


def test_dry_run_lists_states_and_commands_and_writes_nothing(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert runs_main(["table1", "--envs", UMAZE, "--seeds", "0", "--runs-dir", str(runs), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--mode td_mpc" in out and "--mode iql_td_mpc" in out and out.count("missing") == 3
    assert out.rstrip().endswith("[grid] 2 cells: 2 missing") and not runs.exists()
    # a run started by hand: interrupted (its checkpoint.pt) and, below, in use by another process
    flat = runs / UMAZE / "iql_td_mpc" / "seed0"
    flat.mkdir(parents=True)
    (flat / "checkpoint.pt").write_bytes(b"")
    (flat / "config.yaml").write_text("train: {mode: iql_td_mpc}\nsteps: 1000\n")
    (flat / "metrics.csv").write_text("step,loss\n100,0.5\n200,0.4\n")
    assert runs_main(["table1", "--envs", UMAZE, "--seeds", "0", "--runs-dir", str(runs), "--dry-run"]) == 0
    line = dry_run_line(capsys.readouterr().out, f"{UMAZE}/iql_td_mpc/seed0")
    assert "[logged to step 200 of 1000]  [resumes from its checkpoint.pt]" in line and "in use" not in line
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from common.run_dir import RunDir; "
                               "c = RunDir(sys.argv[1], sys.argv[2], 'iql_td_mpc', 0).claim(); "
                               "print('held', flush=True); time.sleep(120)", str(runs), UMAZE],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert runs_main(["table1", "--envs", UMAZE, "--seeds", "0", "--runs-dir", str(runs), "--dry-run"]) == 0
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    line = dry_run_line(capsys.readouterr().out, f"{UMAZE}/iql_td_mpc/seed0")
    assert f"[in use by pid {holder.pid} on host" in line


# --- cell state, skip / resume ---------------------------------------------------------------------------
def test_cell_state_from_manifest_and_final(tmp_path):
    cell = umaze_grid(tmp_path)[f"{UMAZE}/bc/none/seed0"]
    cell.run_dir.mkdir(parents=True)
    assert m.cell_state(cell) == m.MISSING
    command = [sys.executable, "-c", "import time; time.sleep(30)"]
    proc = subprocess.Popen(command)
    try:
        m.write_manifest(cell.manifest_path, {"status": "running", "host": socket.gethostname(), "pid": proc.pid,
                                              "command": command})
        assert m.cell_state(cell) == m.RUNNING
        m.write_manifest(cell.manifest_path, {"status": "running", "host": socket.gethostname(), "pid": proc.pid,
                                              "command": ["something", "else"]})
        assert m.cell_state(cell) == m.INTERRUPTED  # a reused pid does not count
    finally:
        proc.kill()
        proc.wait()
    m.write_manifest(cell.manifest_path, {"status": "running", "host": socket.gethostname(), "pid": proc.pid,
                                          "command": command})
    assert m.cell_state(cell) == m.INTERRUPTED  # killed
    other_host = {"status": "running", "host": "elsewhere", "pid": 1}
    m.write_manifest(cell.manifest_path, {**other_host, "heartbeat_unix": time.time()})
    assert m.cell_state(cell) == m.RUNNING
    m.write_manifest(cell.manifest_path, {**other_host, "heartbeat_unix": time.time() - 1000})
    assert m.cell_state(cell) == m.INTERRUPTED  # no heartbeat for longer than STALE_AFTER_S
    m.write_manifest(cell.manifest_path, {"status": "done"})
    assert m.cell_state(cell) == m.FAILED  # done without final.json: run again
    cell.final_path.write_text("{}")
    assert m.cell_state(cell) == m.DONE


def test_scheduler_skips_done_reruns_failed_and_interrupted_blocks_dependents(tmp_path):
    events = tmp_path / "events.txt"
    cells = umaze_grid(tmp_path)
    k = {name: f"{UMAZE}/{name}" for name in ("manager/seed0", "manager/seed1", "bc/none/seed0", "bc/none/seed1",
                                               "bc/manager/seed0", "bc/manager/seed1")}
    grid = {key: fake(c, events, sleep_s=0.3) for key, c in cells.items()}
    grid[k["manager/seed1"]] = fake(cells[k["manager/seed1"]], events, code=3)
    done_before = grid[k["bc/none/seed0"]]
    done_before.run_dir.mkdir(parents=True)
    done_before.final_path.write_text('{"normalized_score": 5}')
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = grid[k["bc/none/seed1"]]
    killed.run_dir.mkdir(parents=True)
    m.write_manifest(killed.manifest_path, {"status": "running", "host": socket.gethostname(),
                                            "pid": int(dead.stdout), "attempt": 1})
    failed_before = grid[k["manager/seed0"]]
    failed_before.run_dir.mkdir(parents=True)
    m.write_manifest(failed_before.manifest_path, {"status": "failed", "attempt": 2, "return_code": 1})

    lines: list[str] = []
    result = run_grid(list(grid.values()), LocalEngine(), 2, job_for, poll_s=0.05, echo=lines.append)

    assert result.outcomes == {k["manager/seed0"]: DONE, k["manager/seed1"]: FAILED, k["bc/none/seed0"]: SKIPPED,
                               k["bc/none/seed1"]: DONE, k["bc/manager/seed0"]: DONE, k["bc/manager/seed1"]: BLOCKED}
    assert result.failed == [k["manager/seed1"]] and result.return_codes[k["manager/seed1"]] == 3
    assert k["manager/seed1"] in result.reasons[k["bc/manager/seed1"]]
    ran = read_events(events)
    started = {key for what, key in ran if what == "start"}
    assert started == {f"{k[n]}" for n in ("manager/seed0", "manager/seed1", "bc/none/seed1", "bc/manager/seed0")}
    assert ran[("start", k["bc/manager/seed0"])] >= ran[("end", k["manager/seed0"])]  # after its Manager
    intervals = [(ran[("start", key)], ran.get(("end", key), ran[("start", key)])) for key in started]
    assert max(sum(s <= t < e for s, e in intervals) for t, _ in intervals) <= 2  # JOBS=2 at most
    resumed = m.read_manifest(killed.manifest_path)
    assert (resumed["status"], resumed["attempt"], resumed["return_code"]) == ("done", 2, 0)
    assert resumed["git_commit"] == "abcdef1234567" and resumed["end_time"] >= resumed["start_time"]
    assert "fake cell running" in killed.log_path.read_text()
    assert m.read_manifest(failed_before.manifest_path)["attempt"] == 3
    failure = m.read_manifest(grid[k["manager/seed1"]].manifest_path)
    assert (failure["status"], failure["return_code"], failure["error"]) == ("failed", 3, "error: fake failure")
    assert not grid[k["bc/manager/seed1"]].run_dir.exists()  # blocked: never started
    assert any("FAILED" in line and "error: fake failure" in line for line in lines)

    # the next invocation re-runs only the failed Manager and the cell it blocked
    events.unlink()
    grid[k["manager/seed1"]] = fake(cells[k["manager/seed1"]], events)
    again = run_grid(list(grid.values()), LocalEngine(), 2, job_for, poll_s=0.05, echo=lines.append)
    assert again.count(SKIPPED) == 4 and again.count(DONE) == 2 and not again.failed
    assert {key for what, key in read_events(events) if what == "start"} == {k["manager/seed1"], k["bc/manager/seed1"]}


def test_scheduler_waits_for_a_cell_running_elsewhere_and_cancel_stops_a_cell(tmp_path):
    events = tmp_path / "events.txt"
    cells = umaze_grid(tmp_path, seeds=(0,))
    manager, ours = cells[f"{UMAZE}/manager/seed0"], cells[f"{UMAZE}/bc/manager/seed0"]
    manager = fake(manager, events, sleep_s=0.5)
    manager.run_dir.mkdir(parents=True)
    proc = subprocess.Popen(list(manager.command))  # "another grid process" is running the Manager
    m.write_manifest(manager.manifest_path, {"status": "running", "host": socket.gethostname(), "pid": proc.pid,
                                             "command": list(manager.command)})
    lines: list[str] = []
    result = run_grid([manager, fake(ours, events)], LocalEngine(), 1, job_for, poll_s=0.05, echo=lines.append)
    proc.wait()
    assert result.outcomes[ours.key] == DONE and any("running in another process" in ln for ln in lines)
    ran = read_events(events)
    assert ran[("start", ours.key)] >= ran[("end", manager.key)]

    # a queued cell that another grid finishes meanwhile is not started again
    pair = umaze_grid(tmp_path / "pair")
    first, second = (fake(pair[f"{UMAZE}/bc/none/seed{s}"], tmp_path / "pair" / "events.txt", sleep_s=0.5)
                     for s in (0, 1))
    timer = threading.Timer(0.1, lambda: (second.run_dir.mkdir(parents=True), second.final_path.write_text("{}")))
    timer.start()
    taken = run_grid([first, second], LocalEngine(), 1, job_for, poll_s=0.05, echo=lines.append)
    timer.join()
    assert taken.outcomes == {first.key: DONE, second.key: SKIPPED} and not second.log_path.exists()

    slow = fake(cells[f"{UMAZE}/bc/none/seed0"], events, sleep_s=60)
    handle = LocalEngine().start(job_for(slow))
    deadline = time.time() + 20
    while (m.read_manifest(slow.manifest_path) or {}).get("status") != "running" and time.time() < deadline:
        time.sleep(0.05)
    pid = m.read_manifest(slow.manifest_path)["pid"]
    handle.cancel()
    handle.join(20)
    stopped = m.read_manifest(slow.manifest_path)
    assert handle.poll() is not None and stopped["status"] == "failed" and "interrupted" in stopped["note"]
    assert not m.process_alive(pid)


def test_stack_groups_start_as_one_job_and_keep_a_manifest_per_cell(tmp_path):
    events = tmp_path / "events.txt"
    cells = umaze_grid(tmp_path, seeds=(0, 1, 2), stack_seeds=True)
    key = {name: f"{UMAZE}/{name}" for name in ("manager/seed0", "manager/seed1", "manager/seed2")}
    assert {c.stack_group for c in cells.values()} == {f"{UMAZE}/manager", None}  # Managers only, not workers
    grid = {k: fake(c, events, sleep_s=0.5) for k, c in cells.items()}
    done_before = grid[key["manager/seed2"]]
    done_before.run_dir.mkdir(parents=True)
    done_before.final_path.write_text("{}")
    lines: list[str] = []
    result = run_grid(list(grid.values()), LocalEngine(), 1, job_for, poll_s=0.05, echo=lines.append)

    assert result.count(SKIPPED) == 1 and result.count(DONE) == len(grid) - 1 and not result.failed
    ran = read_events(events)
    first, second = (grid[key[f"manager/seed{s}"]] for s in (0, 1))
    # seeds 0 and 1 together (JOBS=1: a stacked job counts once), seed 2 (done) not again
    assert ran[("start", first.key)] == ran[("start", second.key)]
    assert ("start", key["manager/seed2"]) not in ran
    assert any(f"start {first.key} stacked with {second.key}" in line for line in lines)
    one, two = (m.read_manifest(c.manifest_path) for c in (first, second))
    assert (one["cell"], one["stacked_with"], two["cell"], two["stacked_with"]) == (
        first.key, [second.key], second.key, [first.key])
    assert one["pid"] == two["pid"] and one["status"] == two["status"] == "done"
    assert one["command"][3] == f"{first.run_dir},{second.run_dir}" and two["log"] == str(first.log_path)
    assert "fake cell running" in first.log_path.read_text()
    assert f"output in {first.log_path}" in second.log_path.read_text()
    for worker in ("bc/manager/seed0", "bc/manager/seed1"):  # after their Managers, one cell per job
        assert ran[("start", f"{UMAZE}/{worker}")] >= ran[("end", first.key)]
    workers = sorted(ran[("start", k)] for (what, k) in ran if what == "start" and "/bc/" in k)
    assert all(b > a for a, b in zip(workers, workers[1:]))  # JOBS=1: one at a time

    # a failed stacked job fails each of its cells (error read from the shared log) and blocks their workers
    broken = umaze_grid(tmp_path / "broken", seeds=(0, 1), stack_seeds=True)
    broken = [fake(c, events, code=3) if c.kind == "manager" else fake(c, events) for c in broken.values()]
    lines.clear()
    failed = run_grid(broken, LocalEngine(), 2, job_for, poll_s=0.05, echo=lines.append)
    managers = [c for c in broken if c.kind == "manager"]
    assert sorted(failed.failed) == sorted(c.key for c in managers) and failed.count(BLOCKED) == 2
    assert all(failed.return_codes[c.key] == 3 for c in managers)
    assert all(m.read_manifest(c.manifest_path)["error"] == "error: fake failure" for c in managers)
    assert sum("FAILED" in line and "error: fake failure" in line for line in lines) == 2
    # the next attempt runs them as one job again; each cell counts its own attempts. There the first
    # seed finishes and the second fails (as when its loss diverges): one cell done, one failed
    partly = [dataclasses.replace(c, command=(*fake(c, events, code=2).command, "1")) if c.kind == "manager"
              else fake(c, events) for c in broken]
    again = run_grid(partly, LocalEngine(), 2, job_for, poll_s=0.05, echo=lines.append)
    assert again.failed == [managers[1].key] and again.outcomes[managers[0].key] == DONE
    first_manifest, second_manifest = (m.read_manifest(c.manifest_path) for c in managers)
    assert (first_manifest["status"], first_manifest["attempt"], first_manifest["return_code"]) == ("done", 2, 2)
    assert "then the command exited 2" in first_manifest["note"] and second_manifest["status"] == "failed"
    repaired = [fake(c, events) for c in broken]  # the third attempt runs the one left, alone
    third = run_grid(repaired, LocalEngine(), 2, job_for, poll_s=0.05, echo=lines.append)
    assert not third.failed and third.outcomes[managers[0].key] == SKIPPED
    assert m.read_manifest(managers[1].manifest_path)["attempt"] == 3
    assert "stacked_with" not in m.read_manifest(managers[1].manifest_path)


def test_ctrl_c_as_a_cell_starts_and_again_leaves_no_running_manifest(tmp_path, monkeypatch):
    """Ctrl-C in the instant between a cell's start and the scheduler's bookkeeping, then a second one
    while the grid stops its cells: the cell is still stopped and its manifest says interrupted (not
    "running", which would hold it for STALE_AFTER_S)."""
    cell = fake(umaze_grid(tmp_path, seeds=(0,))[f"{UMAZE}/bc/none/seed0"], tmp_path / "events.txt", sleep_s=60)
    second_ctrl_c = threading.Event()
    sleep, lines = time.sleep, []

    def sleep_or_second_ctrl_c(seconds):
        if second_ctrl_c.is_set():
            second_ctrl_c.clear()
            raise KeyboardInterrupt
        sleep(seconds)

    class InterruptedAsItStarts(LocalEngine):
        def start(self, job):
            super().start(job)
            deadline = time.time() + 20
            while (m.read_manifest(cell.manifest_path) or {}).get("status") != "running" and time.time() < deadline:
                sleep(0.05)
            second_ctrl_c.set()
            raise KeyboardInterrupt  # before run_grid has recorded the handle

    monkeypatch.setattr(time, "sleep", sleep_or_second_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_grid([cell], InterruptedAsItStarts(), 1, job_for, poll_s=0.05, echo=lines.append)
    assert any("still stopping" in line for line in lines) and not second_ctrl_c.is_set()
    manifest = m.read_manifest(cell.manifest_path)
    assert manifest["status"] == "failed" and "interrupted" in manifest["note"]
    assert not m.process_alive(manifest["pid"])


def test_two_grids_over_one_runs_folder_run_each_cell_once(tmp_path):
    events = tmp_path / "events.txt"
    grid = [fake(c, events, sleep_s=0.3) for c in umaze_grid(tmp_path).values()]
    results, lines = [], []

    def one_grid():
        results.append(run_grid(grid, LocalEngine(), 2, job_for, poll_s=0.02, echo=lines.append))

    grids = [threading.Thread(target=one_grid) for _ in range(2)]
    for thread in grids:
        thread.start()
    for thread in grids:
        thread.join(60)
    starts = [line.split()[1] for line in events.read_text().splitlines() if line.startswith("start")]
    assert sorted(starts) == sorted(str(c.run_dir) for c in grid)  # every cell started exactly once
    for result in results:
        assert set(result.outcomes) == {c.key for c in grid} and not result.failed
        assert result.count(DONE) + result.count(SKIPPED) == len(grid)
    assert all(m.read_manifest(c.manifest_path)["attempt"] == 1 for c in grid)


def test_a_claim_blocks_other_grids_and_dies_with_its_process(tmp_path):
    events = tmp_path / "events.txt"
    cell = fake(umaze_grid(tmp_path, seeds=(0,))[f"{UMAZE}/bc/none/seed0"], events)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time, pathlib; from runs.claims import CellClaims; "
                               "c = CellClaims(); assert c.acquire('x', pathlib.Path(sys.argv[1])); "
                               "print('held', flush=True); time.sleep(120)", str(cell.run_dir)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert claimed_elsewhere(cell.run_dir) and not CellClaims().acquire(cell.key, cell.run_dir)
    lines: list[str] = []
    threading.Timer(0.5, holder.kill).start()  # the other grid dies without releasing anything
    result = run_grid([cell], LocalEngine(), 1, job_for, poll_s=0.05, echo=lines.append)
    holder.wait()
    # the claimed cell was waited for, not started; once its claimant died it counts as failed
    assert any("running in another process" in ln for ln in lines) and not events.exists()
    assert result.outcomes[cell.key] == FAILED and not claimed_elsewhere(cell.run_dir)
    again = run_grid([cell], LocalEngine(), 1, job_for, poll_s=0.05, echo=lines.append)
    assert again.outcomes[cell.key] == DONE and CellClaims().acquire(cell.key, cell.run_dir)


def test_the_grid_waits_for_a_run_started_by_hand(tmp_path):
    events = tmp_path / "events.txt"
    cell = fake(umaze_grid(tmp_path, seeds=(0,))[f"{UMAZE}/bc/none/seed0"], events)
    lines: list[str] = []
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from common.run_dir import RunDir; "
                               "c = RunDir(*sys.argv[1:3], ['bc', 'none'], 0).claim(); "
                               "print('held', flush=True); time.sleep(120)", str(cell.run_dir.parents[3]), UMAZE],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    assert in_training(cell.run_dir) and claimed_elsewhere(cell.run_dir)
    try:
        threading.Timer(0.5, holder.kill).start()  # the run by hand stops (here: dies) without finishing
        result = run_grid([cell], LocalEngine(), 1, job_for, poll_s=0.05, echo=lines.append)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert any("running in another process" in ln for ln in lines) and not events.exists()
    assert result.outcomes[cell.key] == FAILED  # waited for, never started twice; unfinished
    again = run_grid([cell], LocalEngine(), 1, job_for, poll_s=0.05, echo=lines.append)
    assert again.outcomes[cell.key] == DONE and events.exists()


# --- aggregation and significance ------------------------------------------------------------------------
def test_welch_known_answers_and_degenerate_cases():
    base, ours = [1, 2, 3, 4, 5], [10, 12, 14, 13, 11]
    res = welch_test(base, ours)
    # by hand: both variances 2.5, t = 9 / sqrt(2.5/5 + 2.5/5) = 9, Welch df = 8
    assert res.t == pytest.approx(9.0) and res.p == pytest.approx(2 * stats.t.sf(9.0, 8))
    assert res.p == pytest.approx(stats.ttest_ind(ours, base, equal_var=False).pvalue) and res.verdict == GAIN
    assert welch_test(ours, base).verdict == LOSS and welch_test(ours, base).marker() == " ↓"
    assert welch_test([1, 2, 3], [1.5, 2.5, 2]).verdict == NO_CHANGE
    assert welch_test([1, 2, 3], [5]).verdict == NOT_TESTED and welch_test([1, 2, 3], [5]).p is None
    same = welch_test([0, 0, 0], [0, 0, 0])
    assert (same.p, same.verdict) == (1.0, NO_CHANGE)
    apart = welch_test([0, 0, 0], [1, 1, 1])
    assert (apart.p, apart.verdict, apart.t) == (0.0, GAIN, math.inf)
    one_constant = welch_test([0, 0, 0], [1, 2, 3])  # no RuntimeWarning escapes (pytest.ini makes it an error)
    assert one_constant.t == pytest.approx(2 / math.sqrt(1 / 3)) and one_constant.verdict == NO_CHANGE
    assert welch_test([1, 2], [3, 5], alpha=0.3).verdict == GAIN  # p = 0.199 (scipy)


def write_result(cell, score: float, commit: str = "abcdef1234567", device: str = "cpu", gpus=None,
                 ran: str | None = None, machine: str | None = None):
    """A finished cell; `ran`: the commit the cell's process reports in final.json (None: not written);
    `machine`: final.json's description of the hardware (None: not written, as before it was recorded)."""
    cell.run_dir.mkdir(parents=True, exist_ok=True)
    final = {"normalized_score": score, "device": device, "profile": "paper",
             "steps": 500_000 if cell.arm[-1] == "none" else 200_000}
    if machine is not None:
        final["machine"] = machine
    cell.final_path.write_text(json.dumps(final if ran is None else {**final, "code_version": ran}))
    m.write_manifest(cell.manifest_path, {"status": "done", "git_commit": commit, "git_dirty": False,
                                          "device": {"resolved": device, "gpus": gpus}})


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_plot_of_one_column_keeps_its_whole_title(tmp_path):
    """A one-worker grid draws one 3.4-inch panel, narrower than the table's title: the image widens."""
    import matplotlib.pyplot as plt

    table, seeds = get_table("table2"), (0, 1)
    cells = expand_grid(table, ("maze2d-medium-v1",), ("bc",), seeds, GridOptions(runs_dir=str(tmp_path / "runs")))
    for cell in cells:
        if cell.arm[0] == "bc":
            write_result(cell, 10.0 * (cell.seed + 1))
    result = aggregate(table, cells, ("maze2d-medium-v1",), ("bc",), seeds)
    width, height = png_size(write_plot(result, cells, tmp_path / "table2.png"))
    fig = plt.figure(dpi=72)
    title = fig.text(0, 0, table.title, fontsize=10)
    title_px = title.get_window_extent(renderer=fig.canvas.get_renderer()).width
    plt.close(fig)
    assert title_px > 3.4 * 72  # the case this test is about: the title is wider than the panel
    assert width >= title_px and height > 2.4 * 72 * 0.8


def test_plot_of_flat_agents_puts_their_final_scores_side_by_side(tmp_path):
    """Flat agents log no evaluation curve: each arm's seeds at its own x position with mean ± std, not
    both arms stacked on one training step; a worker arm without a curve beside one with it keeps its step."""
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    from runs.plots import draw_panel

    table, seeds = get_table("table1"), (0, 1, 2)
    cells = expand_grid(table, (UMAZE,), (), seeds, GridOptions(runs_dir=str(tmp_path / "runs")))
    scores = {"td_mpc": [30.0, 40.0, 35.0], "iql_td_mpc": [50.0, 54.0, 58.0]}
    for cell in cells:
        cell.run_dir.mkdir(parents=True, exist_ok=True)
        final = {"normalized_score": scores[cell.arm[0]][cell.seed], "steps": 20_000}
        cell.final_path.write_text(json.dumps(final))
    for cell in cells:
        m.write_manifest(cell.manifest_path, {"status": "done"})
    arm_cells = {a: [c for c in cells if c.arm[0] == a] for a in scores}
    entry = aggregate(table, cells, (UMAZE,), (), seeds).entries[0]
    fig, ax = plt.subplots()
    assert draw_panel(ax, entry, arm_cells["td_mpc"], arm_cells["iql_td_mpc"], table.baseline_label,
                      table.ours_label)
    assert [t.get_text() for t in ax.get_xticklabels()] == [table.baseline_label, table.ours_label]
    dots = [c.get_offsets() for c in ax.collections if len(c.get_offsets()) == 3]
    assert len(dots) == 2
    for x, (arm, offsets) in enumerate(zip(scores, dots)):
        assert np.all(np.abs(offsets[:, 0] - x) < 0.2) and offsets[:, 1].tolist() == scores[arm]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    means = [float(b.lines[0].get_ydata()[0]) for b in bars]
    assert means == [35.0, 54.0] and "20,000 steps" in ax.get_xlabel()
    nothing = aggregate(table, [], (UMAZE,), (), seeds).entries[0]
    assert not draw_panel(ax, nothing, [], [], table.baseline_label, table.ours_label)  # nothing finished
    plt.close(fig)

    workers = expand_grid(get_table("table2"), (UMAZE,), ("bc",), (0,), GridOptions(runs_dir=str(tmp_path / "w")))
    w = {cell.arm: cell for cell in workers}
    write_result(w[("bc", "none")], 7.0)
    (w[("bc", "none")].run_dir / "metrics.csv").write_text("step,loss,eval_normalized_score\n100,0.9,3\n200,0.8,5\n")
    write_result(w[("bc", "manager")], 9.0)  # final.json only
    bc = aggregate(get_table("table2"), workers, (UMAZE,), ("bc",), (0,)).entry(UMAZE, "BC")
    fig, ax = plt.subplots()
    assert draw_panel(ax, bc, [w[("bc", "none")]], [w[("bc", "manager")]], "none", "manager")
    assert ax.get_lines()[0].get_ydata().tolist() == [3, 5]  # the baseline's curve
    assert ax.collections[-1].get_offsets().tolist() == [[200_000, 9.0]]  # the other arm's final score at its step
    plt.close(fig)


def test_tables_from_rescored_runs(tmp_path):
    """--rescored-episodes N: each finished run scored by its evaluations/episodes<N>_seed<k>.json
    (python -m corl evaluate RUN_DIR --episodes N), a run without one counted as not finished."""
    table, seeds = get_table("table2"), (0, 1, 2)
    cells = {c.key: c for c in expand_grid(table, (UMAZE,), ("bc",), seeds, GridOptions(runs_dir=str(tmp_path)))}
    for seed in seeds:
        for arm, final_score, rescored in (("none", 1.0, 10.0 + seed), ("manager", 2.0, 30.0 + seed)):
            cell = cells[f"{UMAZE}/bc/{arm}/seed{seed}"]
            write_result(cell, final_score)
            if not (arm == "manager" and seed == 2):  # one run not re-scored
                (cell.run_dir / "evaluations").mkdir()
                (cell.run_dir / "evaluations" / f"episodes100_seed{seed}.json").write_text(
                    json.dumps({"normalized_score": rescored, "episodes": 100}))
        write_result(cells[f"{UMAZE}/manager/seed{seed}"], 0.0)
    plain = aggregate(table, list(cells.values()), (UMAZE,), ("bc",), seeds).entry(UMAZE, "BC")
    assert plain.baseline.values == [1.0] * 3 and plain.ours.values == [2.0] * 3
    result = aggregate(table, list(cells.values()), (UMAZE,), ("bc",), seeds, rescored_episodes=100)
    entry = result.entry(UMAZE, "BC")
    assert entry.baseline.values == [10.0, 11.0, 12.0] and entry.ours.values == [30.0, 31.0]
    assert entry.ours.states[2] == "not re-scored" and entry.ours.done == 2 and entry.baseline.done == 3
    assert result.managers[UMAZE].done == 3  # Managers have no score to re-score
    md_path, _ = write_reports(result, tmp_path, 0.05, "python -m runs table2 --rescored-episodes 100", None)
    assert "- Scores: each finished run re-scored with 100 episodes" in Path(md_path).read_text()


def test_aggregation_tables_and_plot_with_known_answers(tmp_path, today):
    table, seeds = get_table("table2"), (0, 1, 2, 3, 4)
    envs, algos = (UMAZE, "maze2d-medium-v1", "maze2d-large-v1", "antmaze-umaze-v2"), ("bc", "awac")
    cells = expand_grid(table, envs, algos, seeds, GridOptions(runs_dir=str(tmp_path / "runs")))
    c = {cell.key: cell for cell in cells}
    for seed, (b, o) in enumerate(zip([1, 2, 3, 4, 5], [10, 12, 14, 13, 11])):
        write_result(c[f"{UMAZE}/bc/none/seed{seed}"], b, device="cuda", gpus=["NVIDIA H100"])
        write_result(c[f"{UMAZE}/bc/manager/seed{seed}"], o, device="cuda", gpus=["NVIDIA H100"])
        write_result(c[f"{UMAZE}/manager/seed{seed}"], 0.0, machine="AMD EPYC (2 cores, torch threads 1)")
    for seed, b in enumerate([50, 52, 54]):
        write_result(c[f"maze2d-medium-v1/bc/none/seed{seed}"], b)
    for seed, o in enumerate([40, 41]):
        write_result(c[f"maze2d-medium-v1/bc/manager/seed{seed}"], o, commit="1234567fedcba")
    failed = c["maze2d-medium-v1/bc/manager/seed2"]
    failed.run_dir.mkdir(parents=True)
    m.write_manifest(failed.manifest_path, {"status": "failed", "error": "error: training diverged"})
    write_result(c["maze2d-large-v1/bc/none/seed0"], 7.0, ran="abcdef1")  # the grid's commit: its manifest speaks
    write_result(c["maze2d-large-v1/bc/manager/seed0"], 9.0, ran="fedcba9")  # committed to after the grid started
    # learning curves: seed 0 logs steps 100, 200; seed 1 steps 100, 200, 300 (rows without eval skipped)
    (c[f"{UMAZE}/bc/none/seed0"].run_dir / "metrics.csv").write_text(
        "step,loss,eval_normalized_score\n50,1.0,\n100,0.9,1\n200,0.8,3\n")
    (c[f"{UMAZE}/bc/none/seed1"].run_dir / "metrics.csv").write_text(
        "step,loss,eval_normalized_score\n100,0.9,3\n200,0.8,5\n300,0.7,7\n")

    result = aggregate(table, cells, envs, algos, seeds)
    umaze = result.entry(UMAZE, "BC")
    assert (umaze.baseline.mean, umaze.ours.mean) == (3.0, 12.0)
    assert umaze.baseline.std == pytest.approx(math.sqrt(2.5)) and umaze.ours.std == pytest.approx(math.sqrt(2.5))
    assert umaze.welch.verdict == GAIN and umaze.welch.p == pytest.approx(2 * stats.t.sf(9.0, 8))
    medium = result.entry("maze2d-medium-v1", "BC")
    assert medium.ours.values == [40.0, 41.0] and medium.ours.std == pytest.approx(math.sqrt(0.5))
    assert medium.welch.p == pytest.approx(stats.ttest_ind([40, 41], [50, 52, 54], equal_var=False).pvalue)
    assert medium.welch.verdict == LOSS and medium.ours.progress() == "2/5 seeds; 1 failed, 2 missing"
    large = result.entry("maze2d-large-v1", "BC")
    assert large.welch.verdict == NOT_TESTED and large.baseline.score_text() == "7.0 (1 seed)"
    assert result.entry(UMAZE, "AWAC").baseline.unavailable == "worker awac not implemented yet"
    assert result.managers[UMAZE].progress() == "5/5 seeds"
    assert profile_warning(result, "paper") is None and "not quick" in profile_warning(result, "quick")

    curve = learning_curve([c[f"{UMAZE}/bc/none/seed{s}"] for s in seeds])
    assert curve.steps.tolist() == [100, 200, 300] and curve.mean.tolist() == [2.0, 4.0, 7.0]
    np.testing.assert_allclose(curve.std, [math.sqrt(2), math.sqrt(2), 0.0])
    assert curve.count.tolist() == [2, 2, 1]

    plot = write_plot(result, cells, tmp_path / "runs" / "table2.png")
    md_path, csv_path = write_reports(result, tmp_path / "runs", 0.05, "python -m runs table2", plot.name)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = md_path.read_text()
    assert "**3.0 ± 1.6 → 12.0 ± 1.6** ↑<br>5/5 seeds → 5/5 seeds; p " in md
    assert "**52.0 ± 2.0 → 40.5 ± 0.7** ↓<br>3/5 seeds; 2 missing → 2/5 seeds; 1 failed, 2 missing" in md
    assert "7.0 (1 seed) → 9.0 (1 seed)**<br>1/5 seeds; 4 missing → 1/5 seeds; 4 missing; p n/a" in md
    assert "unavailable: worker awac not implemented yet<br>paper: 77 ± 38 → 78 ± 5" in md
    assert "unavailable: task antmaze-umaze-v2 not in the task layer yet<br>paper: 52 ± 6 → 78 ± 2" in md
    assert "paper: 3 ± 4 → 64 ± 9" in md and "p < 0.05" in md
    assert "abcdef1 (19 cells)" in md and "1234567 (2 cells)" in md and "fedcba9 (1 cell)" in md and "cuda (NVIDIA H100) (10 cells)" in md
    assert "cpu: AMD EPYC (2 cores, torch threads 1) (5 cells)" in md and "cpu (7 cells)" in md
    assert "maze2d-medium-v1/bc/manager/seed2`: failed: error: training diverged" in md
    rows = {(r["env"], r["column"]): r for r in csv.DictReader(csv_path.open())}
    assert len(rows) == len(envs) * len(algos)
    row = rows[(UMAZE, "BC")]
    assert float(row["baseline_mean"]) == 3.0 and float(row["baseline_std"]) == pytest.approx(math.sqrt(2.5), 1e-5)
    assert float(row["welch_p"]) == pytest.approx(umaze.welch.p, rel=1e-5) and row["verdict"] == GAIN
    assert row["baseline_scores"] == "0:1;1:2;2:3;3:4;4:5" and row["ours_n"] == "5"
    assert (row["paper_baseline_mean"], row["paper_ours_mean"], row["paper_ours_std"]) == ("3", "64", "9")
    assert rows[("antmaze-umaze-v2", "AWAC")]["unavailable"] == "task antmaze-umaze-v2 not in the task layer yet"


def test_paper_numbers_for_every_entry_of_every_table():
    numbers = published_numbers()
    assert len(numbers) == 14 * 5 + 14 * 6 * 2 + 7 * 4 * 2
    for table in TABLES.values():
        result = aggregate(table, [], table.datasets, table.default_algos, (0,))
        assert all(e.paper_baseline is not None and e.paper_ours is not None for e in result.entries)
        assert len(result.entries) == len(table.datasets) * max(len(table.default_algos), 1)
    table1 = aggregate(TABLES["table1"], [], PAPER_DATASETS, (), (0,))
    assert all(set(table1.published_other[env]) == {"IQL", "TT", "TAP"} for env in PAPER_DATASETS)
    assert published(2, "maze2d-large-v1", ("bc", "none")) == (p := published(2, "maze2d-large-v1", "bc/none"))
    assert (p.mean, p.std) == (-1.0, 0.5)
    assert (published(2, "maze2d-large-v1", "bc/manager").mean, published(2, "maze2d-large-v1", "bc/manager").std) \
        == (94.0, 8.0)
    assert published(1, "maze2d-medium-v1", "iql_td_mpc").text() == "161 ± 11.3"
    assert published(1, "maze2d-medium-v1", "TAP").mean == -3.9
    assert published(3, "antmaze-large-play-v2", "iql/random").mean == 25.0
    assert published(3, "halfcheetah-medium-expert-v2", "bc/random").std == 5.0
    assert published(2, UMAZE, "bc_10/none") is None


# --- end to end ------------------------------------------------------------------------------------------
def test_smoke_grid_end_to_end_through_the_entry_points(tmp_path, data_dir, capsys):
    runs = tmp_path / "runs"
    argv = ["table2", "--envs", UMAZE, "--algos", "bc", "--seeds", "0,1", "--profile", "smoke", "--device", "cpu",
            "--jobs", "2", "--runs-dir", str(runs), "--data-dir", str(data_dir)]
    assert runs_main(argv) == 0
    assert "6 done" in capsys.readouterr().out
    for name in ("table2.md", "table2.csv", "table2.png"):
        assert (runs / name).stat().st_size > 0
    md = (runs / "table2.md").read_text()
    row = next(csv.DictReader((runs / "table2.csv").open()))
    assert (row["baseline_n"], row["ours_n"]) == ("2", "2") and row["verdict"] != NOT_TESTED
    scores = [float(s.split(":")[1]) for s in row["ours_scores"].split(";")]
    assert float(row["ours_mean"]) == pytest.approx(np.mean(scores))
    assert f"| {UMAZE} | **" in md and f"2/2 seeds → 2/2 seeds; p {float(row['welch_p']):.3g}" in md
    assert "<br>paper: 3 ± 4 → 64 ± 9" in md and f"| {UMAZE} | 2/2 seeds |" in md and "smoke (6 cells)" in md
    for arm, seed in (("manager", 0), ("manager", 1), ("bc/none", 0), ("bc/manager", 1)):
        run_dir = runs / UMAZE / arm / f"seed{seed}"
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert (manifest["status"], manifest["attempt"], manifest["return_code"]) == ("done", 1, 0)
        assert manifest["device"]["resolved"] == "cpu" and manifest["run_config"] and manifest["git_commit"]
        assert manifest["command"][1:3] == (["-m", "manager"] if arm == "manager" else ["-m", "corl"])
        assert (run_dir / "cell.log").stat().st_size > 0 and (run_dir / "final.json").is_file()
    assert runs_main(argv) == 0  # everything is done: nothing runs again
    assert "6 done before" in capsys.readouterr().out
    assert json.loads((runs / UMAZE / "manager" / "seed0" / "manifest.json").read_text())["attempt"] == 1


def test_stacked_table1_smoke_grid_through_the_entry_points(tmp_path, data_dir, capsys):
    runs = tmp_path / "runs"
    argv = ["table1", "--envs", UMAZE, "--seeds", "0,1", "--profile", "smoke", "--device", "cpu", "--stack-seeds",
            "--runs-dir", str(runs), "--data-dir", str(data_dir)]
    assert runs_main(argv) == 0
    out = capsys.readouterr().out
    assert "4 done" in out and out.count("stacked with") == 2  # one process per flat mode
    for mode in ("td_mpc", "iql_td_mpc"):
        first, second = (runs / UMAZE / mode / f"seed{seed}" for seed in (0, 1))
        one, two = (json.loads((p / "manifest.json").read_text()) for p in (first, second))
        assert one["pid"] == two["pid"] and one["status"] == two["status"] == "done"
        assert "--seeds 0,1" in one["command_line"] and one["config"]["seeds"] == [0, 1]
        assert two["run_config"]["train"]["seed"] == 1 and two["log"] == str(first / "cell.log")
        finals = [json.loads((p / "final.json").read_text()) for p in (first, second)]
        assert [(f["seed"], f["mode"]) for f in finals] == [(0, mode), (1, mode)]
        assert all(math.isfinite(f["normalized_score"]) for f in finals)
    row = next(r for r in csv.DictReader((runs / "table1.csv").open()) if r["env"] == UMAZE)
    assert (row["baseline_n"], row["ours_n"]) == ("2", "2")
    assert runs_main(argv) == 0 and "4 done before" in capsys.readouterr().out


def test_submitit_local_executor_runs_a_cell(tmp_path):
    pytest.importorskip("submitit")
    from runs.submitit_engine import SubmititEngine

    events = tmp_path / "events.txt"
    cell = fake(umaze_grid(tmp_path, seeds=(0,))[f"{UMAZE}/bc/none/seed0"], events, score=42.0)
    engine = SubmititEngine(tmp_path / "submitit", cluster="local", timeout_min=5, gpus_per_cell=0)
    result = run_grid([cell], engine, 1, job_for, poll_s=0.1, echo=lambda line: None)
    assert result.outcomes == {cell.key: DONE}
    manifest = m.read_manifest(cell.manifest_path)
    assert (manifest["status"], manifest["engine"], manifest["return_code"]) == ("done", "submitit:local", 0)
    assert json.loads(cell.final_path.read_text())["normalized_score"] == 42.0
    assert "fake cell running" in cell.log_path.read_text()


def test_aggregate_only_shows_missing_cells(tmp_path, today):
    runs = tmp_path / "runs"
    assert runs_main(["table3", "--envs", "antmaze-large-play-v2,halfcheetah-medium-v2", "--algos", "bc,iql",
                      "--seeds", "0,1", "--runs-dir", str(runs), "--aggregate-only"]) == 0
    md = (runs / "table3.md").read_text()
    assert md.count("unavailable: task antmaze-large-play-v2 not in the task layer yet") == 2
    assert "unavailable: task halfcheetah-medium-v2 not in the task layer yet<br>paper: 47 ± 0.3 → 47 ± 0.1" in md
    assert UNAVAILABLE in md and "16 unavailable" in md


def test_the_local_engine_spreads_cells_over_gpus_and_frees_each_when_its_cell_ends(tmp_path):
    """--gpus 0,1: each cell gets CUDA_VISIBLE_DEVICES of the least busy GPU; a GPU is free again once its
    cell's process has ended."""
    engine = LocalEngine(["0", "1"])
    go = tmp_path / "go"

    def job(name: str, wait_for_go: bool) -> CellJob:
        wait = f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n" if wait_for_go else ""
        script = f"import os, time\n{wait}print('gpu', os.environ['CUDA_VISIBLE_DEVICES'])"
        return CellJob(key=name, command=(sys.executable, "-c", script), run_dir=str(tmp_path / name),
                       cwd=str(tmp_path))

    held, quick = engine.start(job("a", True)), engine.start(job("b", False))
    quick.join(60)
    third = engine.start(job("c", False))  # GPU 1 is free again, GPU 0 still held by a
    third.join(60)
    go.touch()
    held.join(60)
    assert [h.poll() for h in (held, quick, third)] == [0, 0, 0]
    logs = {name: (tmp_path / name / "cell.log").read_text() for name in "abc"}
    assert "gpu 0" in logs["a"] and "gpu 1" in logs["b"] and "gpu 1" in logs["c"]
    assert sum(engine._busy.values()) == 0
