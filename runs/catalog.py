"""What exists today: the tasks the task layer knows and the workers `python -m corl` runs.

The grids name every dataset and worker of the paper; a cell whose task or worker does not exist
yet is shown as unavailable (with this module's reason), never dropped and never run.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

from runs.tables import WORKER_LABELS


@lru_cache(maxsize=None)
def known_tasks() -> frozenset[str]:
    """Task names `tasks.get_task` accepts."""
    from tasks import TASKS

    return frozenset(TASKS)


@lru_cache(maxsize=None)
def worker_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(implemented, planned) worker names: those `python -m corl` runs, and those the tables name
    (runs/tables.py WORKER_LABELS) that it does not run (yet)."""
    implemented = tuple(importlib.import_module("corl.__main__").WORKERS)
    planned = tuple(name for name in WORKER_LABELS if name not in implemented)
    return implemented, planned


def task_unavailable_reason(env: str) -> str | None:
    """None if the task layer knows `env`, else why its cells cannot run (short: it goes in tables)."""
    if env in known_tasks():
        return None
    return f"task {env} not in the task layer yet"


def worker_unavailable_reason(algo: str) -> str | None:
    """None if `python -m corl ALGO` runs, else why its cells cannot run."""
    implemented, _ = worker_names()
    if algo in implemented:
        return None
    return f"worker {algo} not implemented yet"
