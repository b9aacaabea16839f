"""Run one cell's command: output to its log file, manifest.json kept up to date (running with a
heartbeat, then done or failed), the child stopped cleanly when cancelled or interrupted. A
stacked job (one `--seeds` command for several cells) keeps every cell's manifest the same way.

`execute_cell` is what every engine runs, in a thread here (local engine) or in a submitit job on
another machine, so a cell leaves the same log and manifest wherever it ran.
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.provenance import REPO_ROOT, git_commit, git_dirty
from runs.grid import LOG_NAME, MANIFEST_NAME
from runs.manifest import read_manifest, utc_now, write_manifest

LOG_TAIL_BYTES = 4096


class CellCancelled(Exception):
    """The grid asked a running cell to stop (Ctrl-C, or its engine cancelled it)."""


@dataclass(frozen=True)
class CellJob:
    """Everything needed to run one cell anywhere (picklable, for submitit)."""
    key: str
    command: tuple[str, ...]
    run_dir: str
    cwd: str
    env: dict[str, str] = field(default_factory=dict)      # variables set for the command
    config: dict[str, Any] = field(default_factory=dict)   # the grid's view: table, env, seed, arm, profile, ...
    git: dict[str, Any] = field(default_factory=dict)      # commit and dirty flag of the code
    engine: str = "local"
    heartbeat_s: float = 30.0
    stacked_with: tuple[tuple[str, str], ...] = ()  # (key, run_dir) of the other cells a stacked command trains

    @property
    def cells(self) -> tuple[tuple[str, str], ...]:
        """(key, run_dir) of the cells this job runs, its own first."""
        return ((self.key, self.run_dir), *self.stacked_with)


def repo_provenance(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Git commit of the code and whether tracked files differ from it (read-only git calls)."""
    return {"commit": git_commit(repo) or "unknown", "dirty": git_dirty(repo)}


def gpu_names(cuda_visible: str | None) -> list[str]:
    """Names of the GPUs a command saw (nvidia-smi; empty when there is none)."""
    command = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
    if cuda_visible and all(p.strip().isdigit() for p in cuda_visible.split(",")):
        command += ["-i", cuda_visible]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def log_tail_error(log_path: Path) -> str | None:
    """The last `error: ...` line of a log (the entry points' clear errors), else its last line."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").replace("\r", "\n").splitlines()]
    except OSError:
        return None
    lines = [ln for ln in lines if ln and not ln.startswith("===")]
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln.split(":")[0]]
    return (errors or lines or [None])[-1]


def stop_process(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`: a training cell uses the grace to reach its next log row and
    checkpoint there (common/interrupt.py), a few seconds at the default log_every."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(proc: subprocess.Popen, heartbeat_s: float, cancel: threading.Event | None, beat) -> int:
    """Wait for the command, calling `beat()` (the manifests' heartbeat) every heartbeat_s; raise
    CellCancelled when asked."""
    next_beat = time.time() + heartbeat_s
    while True:
        try:
            return proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            raise CellCancelled("cancelled by the grid")
        if time.time() >= next_beat:
            beat()
            next_beat = time.time() + heartbeat_s


def _finish(manifest: dict[str, Any], run_dir: Path, log_path: Path, return_code: int | None,
            note: str | None) -> dict[str, Any]:
    final_path = run_dir / "final.json"
    # (a cell starts only without final.json, so one there now was written by this attempt)
    done = final_path.is_file()
    end = time.time()
    manifest.update(status="done" if done else "failed", return_code=return_code, end_time=utc_now(),
                    wall_s=round(end - manifest["start_unix"], 3), heartbeat=utc_now(), heartbeat_unix=end)
    if note and not done:
        manifest["note"] = note
    elif return_code == 0 and not done:
        manifest["note"] = "exited 0 without final.json (stopped early by a step or time limit?)"
    elif return_code != 0 and done:  # e.g. another seed of a stacked job diverged after this one was done
        manifest["note"] = f"finished (final.json written), then the command exited {return_code}: see the log"
    if done:
        final = json.loads(final_path.read_text())
        manifest["device"]["resolved"] = final.get("device")
        if str(final.get("device", "")).startswith("cuda"):
            manifest["device"]["gpus"] = gpu_names(manifest["device"].get("cuda_visible_devices"))
    else:
        manifest["error"] = log_tail_error(log_path)
    config_path = run_dir / "config.yaml"
    if config_path.is_file():
        manifest["run_config"] = yaml.safe_load(config_path.read_text())
    return manifest


def execute_cell(job: CellJob, cancel: threading.Event | None = None) -> int:
    """Run the cell's command to its end; returns its exit code (negative: killed by that signal).
    A stacked job's command trains several cells: each keeps its own manifest (status from its own
    final.json); the output goes to the first cell's log, the others' logs point there."""
    cells = [(key, Path(run_dir)) for key, run_dir in job.cells]
    for _, run_dir in cells:
        run_dir.mkdir(parents=True, exist_ok=True)
    log_path = cells[0][1] / LOG_NAME
    attempts = {key: int((read_manifest(run_dir / MANIFEST_NAME) or {}).get("attempt", 0) or 0) + 1
                for key, run_dir in cells}
    env = {**os.environ, **job.env}
    host = socket.gethostname()
    manifests: dict[str, dict[str, Any]] = {}

    def write_all() -> None:
        for key, run_dir in cells:
            write_manifest(run_dir / MANIFEST_NAME, manifests[key])

    for key, run_dir in cells[1:]:
        with open(run_dir / LOG_NAME, "a") as pointer:
            pointer.write(f"\n=== attempt {attempts[key]}, {utc_now()}, {host}, {job.engine}: stacked with "
                          f"{', '.join(k for k, _ in cells if k != key)}; output in {log_path}\n")
    with open(log_path, "a") as log:
        log.write(f"\n=== attempt {attempts[job.key]}, {utc_now()}, {host}, {job.engine}: {shlex.join(job.command)}\n")
        log.flush()
        start = time.time()
        try:
            proc = subprocess.Popen(list(job.command), cwd=job.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        except OSError as exc:  # e.g. the interpreter path does not exist on this machine
            log.write(f"error: cannot start the command: {exc}\n")
            for key, _ in cells:
                manifests[key] = {"cell": key, "status": "failed", "attempt": attempts[key],
                                  "command": list(job.command), "host": host, "start_time": utc_now(),
                                  "end_time": utc_now(), "return_code": 127, "log": str(log_path),
                                  "error": f"error: cannot start the command: {exc}"}
            write_all()
            return 127
        shared: dict[str, Any] = {
            "status": "running", "command": list(job.command),
            "command_line": shlex.join(job.command), "cwd": job.cwd, "git_commit": job.git.get("commit"),
            "git_dirty": job.git.get("dirty"), "config": job.config, "engine": job.engine,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "host": host, "pid": proc.pid,
            "device": {"requested": job.config.get("device"),
                       "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES")},
            "env_overrides": dict(job.env), "start_time": utc_now(), "start_unix": start, "end_time": None,
            "return_code": None, "log": str(log_path), "heartbeat": utc_now(), "heartbeat_unix": start}
        for key, _ in cells:
            manifests[key] = {"cell": key, "attempt": attempts[key], **shared, "device": dict(shared["device"])}
            if len(cells) > 1:
                manifests[key]["stacked_with"] = [k for k, _ in cells if k != key]
        write_all()

        def beat() -> None:
            for manifest in manifests.values():
                manifest.update(heartbeat=utc_now(), heartbeat_unix=time.time())
            write_all()

        try:
            return_code = _wait(proc, job.heartbeat_s, cancel, beat)
        except BaseException as exc:  # cancelled, Ctrl-C, SystemExit: stop the child, record it, re-raise
            stop_process(proc)
            log.write(f"\n=== stopped: {type(exc).__name__} {exc}\n")
            log.flush()
            for key, run_dir in cells:
                _finish(manifests[key], run_dir, log_path, proc.returncode,
                        f"interrupted ({type(exc).__name__}: {exc})")
            write_all()
            if isinstance(exc, CellCancelled):
                return proc.returncode if proc.returncode is not None else -1
            raise
    for key, run_dir in cells:
        _finish(manifests[key], run_dir, log_path, return_code, None)
    write_all()
    return return_code
