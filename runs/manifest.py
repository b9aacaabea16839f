"""A cell's manifest.json and the state of a cell derived from it and from final.json.

manifest.json (in the cell's run folder, written atomically) records what produced the run:
command, git commit, config, device, host, pid, start / end time, heartbeat, status
(running | done | failed), return code, log path, attempt number. final.json remains the one proof
of completion: a cell is done when final.json exists, whatever its manifest says.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from common.atomic import write_json_atomic
from runs.grid import Cell

STALE_AFTER_S = 180.0  # a running manifest from another host with no heartbeat this long is an interrupted run

# states of a cell
DONE = "done"                # final.json exists
RUNNING = "running"          # manifest running and its process alive (here, or heartbeat fresh elsewhere)
INTERRUPTED = "interrupted"  # manifest running but its process is gone (killed, machine lost)
FAILED = "failed"            # manifest failed (non-zero exit, or exit 0 without final.json)
MISSING = "missing"          # never started by a grid (maybe a partial run by hand: it resumes)
UNAVAILABLE = "unavailable"  # its task or worker does not exist yet
BLOCKED = "blocked"          # a cell it depends on failed or is unavailable (scheduler outcome)
NEEDS_RUN = frozenset({MISSING, INTERRUPTED, FAILED})


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return {"status": "unreadable"}


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    write_json_atomic(path, manifest)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def process_alive(pid: int, command: list[str] | None = None) -> bool:
    """Is process `pid` alive on this host (and, where /proc tells, still running `command`)?"""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{int(pid)}")
    try:
        if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # a zombie has exited
        if command is not None:
            return (proc / "cmdline").read_bytes().rstrip(b"\0").split(b"\0") == [c.encode() for c in command]
    except (OSError, IndexError):
        pass  # no /proc (macOS): the pid check is all there is
    return True


def manifest_process_alive(manifest: dict[str, Any], stale_after_s: float = STALE_AFTER_S) -> bool:
    """Whether the process a running manifest names is still at work."""
    if manifest.get("host") == socket.gethostname() and manifest.get("pid"):
        return process_alive(manifest["pid"], manifest.get("command"))
    return time.time() - float(manifest.get("heartbeat_unix", 0)) < stale_after_s


def cell_state(cell: Cell, stale_after_s: float = STALE_AFTER_S) -> str:
    if cell.unavailable:
        return UNAVAILABLE
    if cell.final_path.is_file():
        return DONE
    manifest = read_manifest(cell.manifest_path)
    if manifest is None:
        return MISSING
    if manifest.get("status") == "running":
        return RUNNING if manifest_process_alive(manifest, stale_after_s) else INTERRUPTED
    return FAILED  # failed, unreadable, or "done" without final.json (e.g. removed by hand)
