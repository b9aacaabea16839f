"""Advisory, non-blocking locks on files (POSIX `flock`), for "one process at a time here".

A lock is an exclusive `flock` on an open descriptor of the file; the kernel drops it when the
descriptor is closed or its process exits or is killed, so a dead process leaves no stale lock to
clean up. The file itself stays and names its last holder (host, pid, since when, command line)
for the error message of the next process and for people reading the folder. On network file
systems flock is as reliable as the file system's lock support (NFSv4: yes).

Where locks cannot be had (no `fcntl`: Windows; a file system without flock: some Lustre or NFS
mounts) every lock is granted (with a warning for such a file system), so two processes on one
run folder are not stopped there; everything else works.

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
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:  # Windows: no flock (see the module's docstring)
    fcntl = None  # type: ignore[assignment]


_UNSUPPORTED_SEEN: set[str] = set()  # file systems already warned about (their error text)


def _flock(fd: int, flags: int, path: Path) -> bool:
    """flock(fd, flags): True when taken, False when another descriptor holds a conflicting lock. Where
    locks cannot be had (no fcntl; a file system without flock, as some Lustre or NFS mounts) it
    grants, with one warning per process and error."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, flags)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        if str(exc) not in _UNSUPPORTED_SEEN:
            _UNSUPPORTED_SEEN.add(str(exc))
            warnings.warn(f"no file locks on the file system of {path} ({exc}): two processes on one run folder "
                          "or dataset are not stopped there", RuntimeWarning, stacklevel=3)
        return True


def try_lock(path: Path, attempts: int = 5) -> int | None:
    """Take the lock on `path` (created if needed) and write this process as its holder; returns the
    open descriptor that holds it (close it to release), or None when another descriptor holds it.
    A few quick retries ride out a reader's momentary probe (is_locked)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    for attempt in range(attempts):
        if _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if fcntl else 0, path):
            break
        if attempt == attempts - 1:
            os.close(fd)
            return None
        time.sleep(0.02)
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
        _flock(fd, fcntl.LOCK_EX, path)  # blocks until the holder ends, finished or killed (try_lock: fcntl exists)
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
        return not _flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, path)
    finally:
        os.close(fd)


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
