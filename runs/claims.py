"""One grid per cell: a grid claims a cell before it starts the cell's job and holds the claim until
the cell settles, so two grids over the same runs/ folder (two `make table2`, or table2 and table3
sharing their baselines) never run one cell twice.

A claim is the lock of `<run_dir>/.grid.lock` (common/file_lock.py), held by the grid process for
as long as the cell is queued at its engine or running (a SLURM job waiting in the queue included);
a dead grid leaves no stale claim. A cell whose run folder is in use by a training process started
by hand (`make worker ...`, the run's own lock, common/run_dir.py) counts as claimed elsewhere too:
the grid waits for it rather than starting a second process on the same folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from common.file_lock import is_locked, try_lock
from common.run_dir import RUN_LOCK_NAME

LOCK_NAME = ".grid.lock"


class CellClaims:
    """The claims one grid process holds, by cell key."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}  # cell key -> open file descriptor holding the lock

    def acquire(self, key: str, run_dir: Path) -> bool:
        """Claim a cell; False when another process holds it."""
        if key in self._held:
            return True
        fd = try_lock(run_dir / LOCK_NAME)
        if fd is None:
            return False
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
    """Whether another process holds the cell's claim or trains in its folder (call it only for
    cells this grid does not hold)."""
    return is_locked(run_dir / LOCK_NAME) or in_training(run_dir)


def in_training(run_dir: Path) -> bool:
    """Whether a training process holds the run folder's own lock (common/run_dir.py)."""
    return is_locked(run_dir / RUN_LOCK_NAME)
