"""Shared by the reference benchmarks: regenerate a dataset into a temporary file, timed, and read it back."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from tasks import TASKS, generate_dataset, read_dataset


def timed_generation(name: str, steps: int | None, seed: int,
                     show_progress: bool) -> tuple[dict[str, np.ndarray], float, float]:
    """-> (the dataset, seconds to generate and write it, file size in MiB); the file is deleted."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = generate_dataset(name, out=Path(tmp) / "data.hdf5", steps=steps, seed=seed, show_progress=show_progress)
        elapsed = time.perf_counter() - start
        size_mb = path.stat().st_size / 2**20
        return read_dataset(path, TASKS[name]), elapsed, size_mb
