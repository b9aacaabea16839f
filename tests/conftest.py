"""Shared fixtures. Every test sees isolated dataset folders: no user's ~/.d4rl, no repo data/.

torch runs on one intra-op thread in the whole suite (and in the subprocesses tests start): the
test networks are tiny, and `make test` runs two xdist workers on a 2-core machine, where more
threads per worker only oversubscribe the cores.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import pytest
import torch

os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def isolated_data_dirs(tmp_path, monkeypatch):
    """HOME, $D4RL_DATASET_DIR and the repo's data/ all point into tmp_path."""
    import tasks.datasets as datasets

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("D4RL_DATASET_DIR", raising=False)
    monkeypatch.setattr(datasets, "LOCAL_DATA_DIR", tmp_path / "repo_data")
    return tmp_path


@pytest.fixture
def signals_as_at_a_terminal():
    """SIGINT and SIGTERM with Python's usual handlers for one test that sends them to this process: a
    suite started as a background job (`cmd &`, nohup, some CI runners) inherits SIGINT ignored,
    and an ignored signal stays ignored by the training loops (common/interrupt.py)."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed in the main thread")
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)


@pytest.fixture(scope="session")
def umaze_small(tmp_path_factory):
    """A 6,000-step maze2d-umaze dataset written once per session: (path, arrays)."""
    from tasks import generate_dataset, get_task, read_dataset

    path = generate_dataset("maze2d-umaze-v1", out=tmp_path_factory.mktemp("data") / "umaze.hdf5",
                            steps=6000, seed=3, show_progress=False)
    return path, read_dataset(path, get_task("maze2d-umaze-v1"))


@pytest.fixture
def data_dir(umaze_small, tmp_path):
    """A --data-dir holding the small umaze dataset under D4RL's file name."""
    import shutil

    from tasks import get_task

    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(umaze_small[0], folder / get_task("maze2d-umaze-v1").dataset_file)
    return folder


@pytest.fixture(scope="session")
def smoke_manager(umaze_small, tmp_path_factory):
    """A Manager trained for 100 smoke steps on the small umaze dataset, once per session: the
    path of its manager.pt (pass it to a worker with --manager)."""
    import shutil

    from manager.trainer import TrainConfig, Trainer, resolve
    from tasks import get_task

    root = tmp_path_factory.mktemp("smoke_manager")
    (root / "data").mkdir()
    shutil.copy(umaze_small[0], root / "data" / get_task("maze2d-umaze-v1").dataset_file)
    result = Trainer(resolve(TrainConfig(mode="manager", env="maze2d-umaze-v1", profile="smoke", steps=100,
                                         runs_dir=str(root / "runs"), data_dir=str(root / "data"), log_every=50,
                                         checkpoint_every=100, progress=False))).train()
    return Path(result["manager"])

