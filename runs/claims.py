"""One grid per cell: a grid claims a cell before it starts the cell's job and holds the claim until
the cell settles, so two grids over the same runs/ folder (two `make table2`, or table2 and table3
sharing their baselines) never run one cell twice.

A claim is an exclusive, non-blocking `flock` on `<run_dir>/.grid.lock`, held open by the grid
process for as long as the cell is queued at its engine or running (a SLURM job waiting in the
queue included). The kernel drops the lock when that process exits or is killed, so a dead grid
leaves no stale claim to clean up. The file itself stays (it is empty of meaning once unlocked)
and names its last holder for people reading the folder. On network file systems flock is as
reliable as the file system's lock support (NFSv4: yes).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".grid.lock"


class CellClaims:
    """The claims one grid process holds, by cell key."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}  # cell key -> open file descriptor holding the lock

    def acquire(self, key: str, run_dir: Path) -> bool:
        """Claim a cell; False when another process holds it."""
        if key in self._held:
            return True
        run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        owner = {"host": socket.gethostname(), "pid": os.getpid(), "since_unix": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        self._held[key] = fd
        return True

    def release(self, key: str) -> None:
        fd = self._held.pop(key, None)
        if fd is not None:
            os.close(fd)  # closing the last descriptor drops the flock

    def release_all(self) -> None:
        for key in list(self._held):
            self.release(key)

    def __contains__(self, key: str) -> bool:
        return key in self._held


def claimed_elsewhere(run_dir: Path) -> bool:
    """Whether another process holds the cell's claim (call it only for cells this grid does not hold)."""
    path = run_dir / LOCK_NAME
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
