"""Where cells run. An engine starts a CellJob and returns a handle the scheduler polls:

  handle.poll() -> None while running, else the exit code (negative: killed / lost)
  handle.cancel() asks the cell to stop (its manifest then says failed, interrupted)
  engine.handles   every handle it may still be running, listed as the cell starts, so a Ctrl-C that
                   strikes between a start and the scheduler's bookkeeping still stops that cell

`local`: each cell in its own process on this machine (JOBS at once), optionally one GPU each.
`submitit`: each cell as a submitit job (SLURM, or submitit's local executor); see submitit_engine.py.
"""
from __future__ import annotations

import dataclasses
import functools
import threading
from collections import Counter
from typing import Any, Protocol

from runs.execute import CellJob, execute_cell


class Handle(Protocol):
    def poll(self) -> int | None: ...
    def cancel(self) -> None: ...


class Engine(Protocol):
    name: str
    handles: list[Handle]
    def start(self, job: CellJob) -> Handle: ...


def live(handles: list[Handle]) -> list[Handle]:
    """The handles whose cells may still run (an engine's list, pruned at each start)."""
    return [h for h in handles if h.poll() is None]


class LocalHandle:
    """A cell running in a thread of this process (the thread waits on the command's process)."""

    def __init__(self, job: CellJob, on_exit=None):
        self._cancel = threading.Event()
        self._return_code: int | None = None
        self._error: BaseException | None = None
        self._on_exit = on_exit
        self._thread = threading.Thread(target=self._run, args=(job,), name=f"cell {job.key}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self, job: CellJob) -> None:
        try:
            self._return_code = execute_cell(job, self._cancel)
        except BaseException as exc:  # reported through poll() as a failure
            self._error = exc
            self._return_code = -1
        finally:
            if self._on_exit:
                self._on_exit()

    def poll(self) -> int | None:
        if self._thread.ident is None:  # never started (Ctrl-C came first): nothing runs
            return -1
        return None if self._thread.is_alive() else self._return_code

    def cancel(self) -> None:
        self._cancel.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


class LocalEngine:
    """Cells as processes on this machine. With `gpus` (e.g. ["0", "1"]) each cell gets
    CUDA_VISIBLE_DEVICES set to the least-busy one, so JOBS cells spread over the GPUs."""

    name = "local"

    def __init__(self, gpus: list[str] | None = None):
        self.gpus = list(gpus or [])
        self._busy: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.handles: list[LocalHandle] = []  # every cell started and not yet seen finished

    def _release(self, gpu: str) -> None:
        """A cell on `gpu` has ended: one cell fewer there."""
        with self._lock:
            self._busy[gpu] -= 1

    def start(self, job: CellJob) -> LocalHandle:
        release_gpu = None
        if self.gpus:
            with self._lock:
                gpu = min(self.gpus, key=lambda g: self._busy[g])
                self._busy[gpu] += 1
            release_gpu = functools.partial(self._release, gpu)
            job = dataclasses.replace(job, env={**job.env, "CUDA_VISIBLE_DEVICES": gpu})
        handle = LocalHandle(job, on_exit=release_gpu)
        # listed before its thread starts: a Ctrl-C at any instant finds every cell that may run
        self.handles = live(self.handles) + [handle]
        handle.start()
        return handle


def make_engine(name: str, *, gpus: list[str] | None = None, **submitit_options: Any) -> Engine:
    if name == "local":
        return LocalEngine(gpus)
    if name == "submitit":
        from runs.submitit_engine import SubmititEngine  # submitit is optional: imported only here

        return SubmititEngine(**submitit_options)
    raise ValueError(f"unknown engine {name!r}; choose local or submitit")
