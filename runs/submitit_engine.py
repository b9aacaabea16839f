"""The submitit engine: each cell becomes one submitit job running `runs.execute.execute_cell`, so a
SLURM cluster (or submitit's local executor, for tests) runs exactly the local cell commands and
leaves results, manifests and logs in the same runs/ layout (a shared filesystem is assumed).

submitit is optional (requirements-dev.txt pins it; `make test` installs it): it is imported only
when --engine submitit is asked for. Its own job files (pickles, stdout of the job wrapper) go to
<runs_dir>/_submitit/.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from runs.engines import live
from runs.execute import REPO_ROOT, CellJob, execute_cell

CLUSTERS = ("auto", "slurm", "local", "debug")


class SubmititHandle:
    def __init__(self, job: Any):
        self.job = job
        self.error: BaseException | None = None

    def poll(self) -> int | None:
        if not self.job.done():
            return None
        try:
            return int(self.job.result())
        except Exception as exc:  # the job died (killed, timed out, node lost): a failed cell
            self.error = exc
            return -1

    def cancel(self) -> None:
        self.job.cancel(check=False)


class SubmititEngine:
    """update_parameters: timeout_min, gpus_per_node, cpus_per_task, mem_gb, slurm_partition,
    plus any `slurm_*` option of submitit's SlurmExecutor in `extra`."""

    def __init__(self, folder: str | os.PathLike, cluster: str = "auto", timeout_min: int = 1440,
                 gpus_per_cell: int = 1, cpus_per_cell: int | None = None, mem_gb: float | None = None,
                 partition: str | None = None, extra: dict[str, Any] | None = None):
        try:
            import submitit
        except ImportError:
            raise RuntimeError("--engine submitit needs the submitit package: .venv/bin/python -m pip install "
                               "submitit==1.5.4 (make setup / make test install it), or use --engine local") from None
        if cluster not in CLUSTERS:
            raise ValueError(f"unknown submitit cluster {cluster!r}; choose one of {', '.join(CLUSTERS)}")
        self.executor = submitit.AutoExecutor(folder=Path(folder), cluster=None if cluster == "auto" else cluster)
        params: dict[str, Any] = {"name": "iql-td-mpc-cell", "timeout_min": int(timeout_min), "nodes": 1,
                                  "tasks_per_node": 1, "gpus_per_node": int(gpus_per_cell)}
        if cpus_per_cell:
            params["cpus_per_task"] = int(cpus_per_cell)
        if mem_gb:
            params["mem_gb"] = float(mem_gb)
        if partition and self.executor.cluster == "slurm":
            params["slurm_partition"] = partition
        params.update(extra or {})
        self.executor.update_parameters(**params)
        self.name = f"submitit:{self.executor.cluster}"
        self.handles: list[SubmititHandle] = []  # jobs submitted and not yet seen finished
        # the job process unpickles runs.execute.execute_cell: make this repository importable there
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if str(REPO_ROOT) not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])

    def start(self, job: CellJob) -> SubmititHandle:
        handle = SubmititHandle(self.executor.submit(execute_cell, dataclasses.replace(job, engine=self.name)))
        self.handles = live(self.handles) + [handle]
        return handle
