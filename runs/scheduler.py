"""Run a grid: skip finished cells, re-run failed and interrupted ones, start a cell only when the
cells it depends on are done, keep at most JOBS cells running, wait for cells another grid
process is running or has claimed (runs.claims), and block (never run) the dependents of a failed
or unavailable cell. Cells of one stack group (an env's Managers or flat agents, with
--stack-seeds) that are due at the same time start as one job: `make_job` gets the tuple of cells
one job runs (one cell, or a stack group's), and a job counts once towards JOBS.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from runs import manifest as m
from runs.claims import CellClaims, claimed_elsewhere, in_training
from runs.engines import Engine, Handle
from runs.execute import CellJob, log_tail_error
from runs.grid import Cell

# outcomes of a grid invocation, per cell
SKIPPED = "done before"   # final.json existed: not run again
DONE = "done"             # ran now and finished
FAILED = "failed"         # ran now (or elsewhere) and did not finish
BLOCKED = m.BLOCKED       # not run: a cell it depends on failed or is unavailable
UNAVAILABLE = m.UNAVAILABLE


@dataclass
class GridRun:
    outcomes: dict[str, str] = field(default_factory=dict)
    return_codes: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)    # blocked / unavailable: why

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes.values() if o == outcome)

    @property
    def failed(self) -> list[str]:
        return [k for k, o in self.outcomes.items() if o == FAILED]

    def summary(self) -> str:
        parts = [f"{self.count(o)} {o}" for o in (DONE, SKIPPED, FAILED, BLOCKED, UNAVAILABLE) if self.count(o)]
        return ", ".join(parts) or "no cells"


def run_grid(cells: list[Cell], engine: Engine, jobs: int, make_job: Callable[[tuple[Cell, ...]], CellJob],
             poll_s: float = 0.5, echo: Callable[[str], None] = print,
             stale_after_s: float = m.STALE_AFTER_S) -> GridRun:
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    result = GridRun()
    by_key = {c.key: c for c in cells}
    settled: dict[str, str] = {}  # key -> done | failed | blocked | unavailable (what dependents see)
    queue: list[Cell] = []
    elsewhere: dict[str, Cell] = {}  # running in another grid process: waited for, not started
    claims = CellClaims()

    def busy_elsewhere(cell: Cell) -> bool:
        return m.cell_state(cell, stale_after_s) == m.RUNNING or claimed_elsewhere(cell.run_dir)

    for cell in cells:
        state = m.cell_state(cell, stale_after_s)
        if state == m.DONE:
            settled[cell.key], result.outcomes[cell.key] = m.DONE, SKIPPED
        elif state == m.UNAVAILABLE:
            settled[cell.key], result.outcomes[cell.key] = UNAVAILABLE, UNAVAILABLE
            result.reasons[cell.key] = cell.unavailable or ""
        elif state == m.RUNNING or claimed_elsewhere(cell.run_dir):
            elsewhere[cell.key] = cell
            echo(f"[grid] {cell.key} is running in another process; waiting for it")
        else:
            queue.append(cell)
            if state in (m.INTERRUPTED, m.FAILED):
                echo(f"[grid] {cell.key} was {state}: running it again (it resumes from its checkpoint)")

    running: dict[str, tuple[Cell, Handle, float]] = {}  # the cells of a stacked job share its handle

    def settle(cell: Cell, return_code: int | None) -> None:
        claims.release(cell.key)
        ok = cell.final_path.is_file()
        settled[cell.key] = m.DONE if ok else FAILED
        result.outcomes[cell.key] = DONE if ok else FAILED
        if return_code is not None:
            result.return_codes[cell.key] = return_code
        if not ok:
            log_path = Path((m.read_manifest(cell.manifest_path) or {}).get("log") or cell.log_path)
            echo(f"[grid] FAILED {cell.key} (exit {return_code}): {log_tail_error(log_path)}; log {log_path}")

    def ready(cell: Cell) -> bool:
        return all(settled.get(d) == m.DONE for d in cell.depends_on)

    def take(cell: Cell) -> bool:
        """Claim a due cell for this process; False (and the cell settled or waited for) when
        another grid has finished it or is running it."""
        queue.remove(cell)
        # another grid (e.g. table3 sharing the baselines of table2) may have taken it
        claimed = claims.acquire(cell.key, cell.run_dir)
        state = m.cell_state(cell, stale_after_s)
        if state == m.DONE:
            claims.release(cell.key)
            settled[cell.key], result.outcomes[cell.key] = m.DONE, SKIPPED
            return False
        if not claimed or state == m.RUNNING or in_training(cell.run_dir):  # (a run started by hand)
            claims.release(cell.key)
            elsewhere[cell.key] = cell
            echo(f"[grid] {cell.key} is running in another process; waiting for it")
            return False
        return True

    def jobs_running() -> int:
        return len({id(handle) for _, handle, _ in running.values()})

    try:
        while queue or running or elsewhere:
            for key, cell in list(elsewhere.items()):
                if not busy_elsewhere(cell):
                    del elsewhere[key]
                    settle(cell, None)
            for key, (cell, handle, started) in list(running.items()):
                return_code = handle.poll()
                if return_code is not None:
                    del running[key]
                    settle(cell, return_code)
                    if settled[key] == m.DONE:
                        echo(f"[grid] done {key} ({time.time() - started:.0f} s; {len(settled)}/{len(cells)} cells settled)")
            for cell in list(queue):
                if cell not in queue:  # started just now with its stack group
                    continue
                deps = [settled.get(d) for d in cell.depends_on]
                lost = [d for d in cell.depends_on if d not in by_key]
                bad = [d for d, s in zip(cell.depends_on, deps) if s in (FAILED, BLOCKED, UNAVAILABLE)]
                if bad or lost:
                    queue.remove(cell)
                    settled[cell.key] = result.outcomes[cell.key] = BLOCKED
                    result.reasons[cell.key] = "needs " + ", ".join(
                        f"{d} ({settled.get(d, 'not in this grid')})" for d in bad + lost)
                    echo(f"[grid] blocked {cell.key}: {result.reasons[cell.key]}")
                elif ready(cell) and jobs_running() < jobs:
                    # a stack group's due cells go together (one --seeds process), each claimed alone
                    group = [cell] + [c for c in queue if c is not cell and cell.stack_group is not None
                                      and c.stack_group == cell.stack_group and ready(c)]
                    group = [c for c in group if take(c)]
                    if not group:
                        continue
                    handle, started = engine.start(make_job(tuple(group))), time.time()
                    for member in group:
                        running[member.key] = (member, handle, started)
                    stacked = f" stacked with {', '.join(c.key for c in group[1:])}" if len(group) > 1 else ""
                    echo(f"[grid] start {group[0].key}{stacked} ({jobs_running()} running, {len(queue)} queued)")
            if queue or running or elsewhere:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        # the engine's list, not `running`: a cell started in the very instant of the Ctrl-C may not be
        # in `running` yet, and its manifest must not be left saying "running"
        handles = list(engine.handles)
        echo(f"[grid] interrupted: stopping {len(handles)} running job(s); re-run the same command to resume")
        for handle in handles:
            handle.cancel()
        deadline = time.time() + 60
        while any(h.poll() is None for h in handles) and time.time() < deadline:
            try:
                time.sleep(0.2)
            except KeyboardInterrupt:  # a second Ctrl-C (or a signal sent twice): the cells still stop cleanly
                echo("[grid] still stopping the running cells (their manifests are being written)")
        raise
    finally:
        claims.release_all()
    return result
