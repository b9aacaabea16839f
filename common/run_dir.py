"""The one run layout of the product: runs/<env>/<what...>/seed<k>/ holding

- config.yaml  the resolved config, written when the run starts;
- metrics.csv  one row per logged step (header from the first row, appended as the run goes);
- final.json   the result, written last and atomically: its presence means the run is complete;
- .run.lock    held (common/file_lock.py) by the one process training in the folder (RunDir.claim):
               a second process on the same run stops with an error naming the first.

Path parts that are not path-safe are slugged.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import weakref
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from common.atomic import write_json_atomic, write_text_atomic
from common.errors import InputError, disk_full, is_disk_full
from common.file_lock import describe_holder, is_locked, last_holder, try_lock

RUN_LOCK_NAME = ".run.lock"


def slug(name: str) -> str:
    """Path-safe form of a name: letters, digits, '.', '_', '-'; anything else becomes '-'."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-")
    if text in ("", ".", ".."):
        raise ValueError(f"cannot make a run-directory name out of {name!r}")
    return text


class RunAlreadyComplete(InputError, RuntimeError):
    """Raised when a finished run would be overwritten without being asked to."""


class RunInUse(InputError, RuntimeError):
    """Raised when another process trains in the run folder."""


_HELD: dict[Path, list[int]] = {}  # lock path -> [descriptor, claims of this process on it]


def _acquire(lock_path: Path, run_path: Path) -> None:
    if lock_path in _HELD:  # this process holds it already (a run resumed in the same process)
        _HELD[lock_path][1] += 1
        return
    fd = try_lock(lock_path)
    if fd is None:
        raise RunInUse(
            f"{run_path} is in use by {describe_holder(last_holder(lock_path))}: wait for it to finish, or stop "
            "it (Ctrl-C: it checkpoints, and the same command resumes it) before running it again, or use "
            "another --seed / --runs-dir")
    _HELD[lock_path] = [fd, 1]


def _release(lock_path: Path) -> None:
    held = _HELD.get(lock_path)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[lock_path]
        os.close(held[0])  # drops the flock


class RunClaim:
    """This process's hold on a run folder (RunDir.claim); released by release(), on leaving a
    `with` block, when the object is garbage-collected, or when the process ends."""

    def __init__(self, lock_path: Path, run_path: Path):
        _acquire(lock_path, run_path)
        self._finalizer = weakref.finalize(self, _release, lock_path)

    def release(self) -> None:
        self._finalizer()  # runs _release at most once

    def __enter__(self) -> "RunClaim":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class RunDir:
    def __init__(self, root: str | Path, env: str, what: str | Sequence[str], seed: int):
        parts = [what] if isinstance(what, str) else list(what)
        self.path = Path(root) / slug(env) / Path(*[slug(p) for p in parts]) / f"seed{int(seed)}"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def final_path(self) -> Path:
        return self.path / "final.json"

    @property
    def lock_path(self) -> Path:
        return self.path / RUN_LOCK_NAME

    def claim(self) -> RunClaim:
        """Hold the folder for this process while it trains there (creating the folder); raises
        RunInUse, naming the holder, when another process holds it. Claims nest within a process."""
        return RunClaim(self.lock_path.resolve(), self.path)

    def is_complete(self) -> bool:
        return self.final_path.is_file()

    def read_final(self) -> dict[str, Any]:
        return json.loads(self.final_path.read_text())

    def start(self, config: Any, overwrite: bool = False) -> None:
        """Create the folder and write config.yaml. A complete run is only redone with overwrite,
        and then its old contents are removed first so no stale metrics survive (the lock files stay:
        a process may hold them)."""
        if self.is_complete():
            if not overwrite:
                raise RunAlreadyComplete(
                    f"{self.path} already holds a finished run (final.json); "
                    "pass --overwrite to redo it, or use another --runs-dir / seed")
            self._clear()
        self.path.mkdir(parents=True, exist_ok=True)
        cfg = asdict(config) if is_dataclass(config) else dict(config)
        write_text_atomic(self.config_path, yaml.safe_dump(cfg, sort_keys=False))

    def _clear(self) -> None:
        """Remove the folder's contents but its lock files (.run.lock, the grid's .grid.lock)."""
        for entry in self.path.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(".lock"):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def log_metrics(self, row: Mapping[str, Any]) -> None:
        """Append one row to metrics.csv; every row must have the columns of the first."""
        new_file = not self.metrics_path.exists()
        if not new_file:
            with open(self.metrics_path, newline="") as f:
                header = next(csv.reader(f), None)
            if header is not None and list(row) != header:
                raise ValueError(f"metrics row has columns {list(row)}, {self.metrics_path} has {header}")
        try:
            with open(self.metrics_path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new_file:
                    writer.writeheader()
                writer.writerow(row)
        except OSError as exc:  # the row may be cut short: a resume drops it (truncate_metrics)
            if is_disk_full(exc, self.path):
                raise disk_full(self.metrics_path, "its last row may be cut short; a resumed run writes it "
                                "again") from exc
            raise

    def truncate_metrics(self, step: int) -> None:
        """Drop metrics.csv rows logged after `step` (a run resumed from its checkpoint at `step`
        re-logs them, so the file ends up as an uninterrupted run's)."""
        if not self.metrics_path.exists():
            return
        with open(self.metrics_path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        # a row cut short (a full disk, a killed process) has fewer columns, or a step after `step`
        kept = rows[:1] + [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit() and int(r[0]) <= step]
        text = io.StringIO()
        csv.writer(text).writerows(kept)
        write_text_atomic(self.metrics_path, text.getvalue())

    def finish(self, result: Mapping[str, Any]) -> None:
        write_json_atomic(self.final_path, dict(result))


def logged_progress(run_dir: Path) -> tuple[int, int] | None:
    """(last step in metrics.csv, the run's total steps from config.yaml) of a run that has logged
    a row; None otherwise (or when either file is unreadable)."""
    try:
        lines = (run_dir / "metrics.csv").read_text().splitlines()
        total = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("steps")
        return (int(lines[-1].split(",", 1)[0]), int(total)) if len(lines) > 1 and total else None
    except (OSError, ValueError, yaml.YAMLError):
        return None


def describe_unfinished(run_dir: Path) -> str:
    """How far a run without final.json has come: 'training now, step X of Y logged, in pid ...', or
    'stopped, step X of Y logged', or 'nothing logged yet' (its lock tells whether a process trains it)."""
    progress = logged_progress(run_dir)
    where = f"step {progress[0]:,} of {progress[1]:,} logged" if progress else "nothing logged yet"
    lock = run_dir / RUN_LOCK_NAME
    if is_locked(lock):
        return f"training now, {where}, in {describe_holder(last_holder(lock))}"
    return f"stopped, {where}" if progress else where
