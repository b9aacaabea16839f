"""Advisory, non-blocking locks on files (POSIX `flock`), for "one process at a time here".

A lock is an exclusive `flock` on an open descriptor of the file; the kernel drops it when the
descriptor is closed or its process exits or is killed, so a dead process leaves no stale lock to
clean up. The file itself stays and names its last holder (host, pid, since when, command line)
for the error message of the next process and for people reading the folder. On network file
systems flock is as reliable as the file system's lock support (NFSv4: yes).

Where `fcntl` does not exist (Windows) there are no locks: every lock is granted, so two processes
on one run folder are not stopped there; everything else works.

Used by the run folders (common/run_dir.py: one training process per run), by the grid's cell
claims (runs/claims.py) and around making a missing dataset (tasks/datasets.py: one process makes
it, the others wait for it and read it).
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock (see the module's docstring)
    fcntl = None  # type: ignore[assignment]


def try_lock(path: Path) -> int | None:
    """Take the lock on `path` (created if needed) and write this process as its holder; returns the
    open descriptor that holds it (close it to release), or None when another descriptor holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    command = shlex.join(sys.orig_argv)  # as typed: python -m corl bc --env ...
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since_unix": time.time(),
              "command": command if len(command) <= 300 else command[:297] + "..."}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(holder) + "\n").encode())
    return fd


@contextlib.contextmanager
def waiting_lock(path: Path, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the lock on `path` for the block, first waiting for its holder when there is one (then
    `on_wait(describe_holder(...))` is called once, to say what is awaited)."""
    fd = try_lock(path)
    if fd is None:
        on_wait(describe_holder(last_holder(path)))
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the holder ends, finished or killed (try_lock: flock exists)
    try:
        yield
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether some descriptor holds the lock on `path` (this process's own included)."""
    if fcntl is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def last_holder(path: Path) -> dict[str, Any]:
    """What the lock file says about its last holder ({} when unreadable)."""
    try:
        return dict(json.loads(path.read_text() or "{}"))
    except (OSError, ValueError, TypeError):
        return {}


def describe_holder(holder: dict[str, Any]) -> str:
    """'pid 123 on host h since 2026-12-07 22:40:01 UTC (python -m corl bc ...)' or 'another process'."""
    if "pid" not in holder:
        return "another process"
    text = f"pid {holder['pid']} on host {holder.get('host', '?')}"
    if "since_unix" in holder:
        text += " since " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(holder["since_unix"])))
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text
