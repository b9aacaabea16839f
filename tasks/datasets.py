"""Offline datasets in D4RL's HDF5 layout: find, validate, read, write, generate, download.

Where a task's file (D4RL's own file name) is looked for, in order:
  1. `data_dir` (the CLI's --data-dir), 2. $D4RL_DATASET_DIR, 3. ~/.d4rl/datasets (D4RL's
  cache, so real D4RL files are found), 4. this project's data/ folder (generated files).
If it is found nowhere: generate it (tasks that can be generated) into `data_dir`, else
$D4RL_DATASET_DIR, else data/ -- never into D4RL's cache, so upstream d4rl never mistakes a
regenerated file for its official one -- else try D4RL's download address, else stop with a
message saying where to put the file.
"""
from __future__ import annotations

import datetime
import functools
import os
import shutil
import sys
import urllib.request
import warnings
from pathlib import Path

import h5py
import mujoco
import numpy as np

from common.atomic import atomic_path
from common.errors import InputError
from common.file_lock import waiting_lock
from common.provenance import REPO_ROOT, git_commit, git_dirty
from tasks.registry import TaskSpec, get_task

LOCAL_DATA_DIR = REPO_ROOT / "data"
DATASET_FORMAT_VERSION = 1
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals")


class DatasetError(InputError, RuntimeError):
    """A dataset file is missing, unreadable or not in D4RL's layout."""


class DatasetNotFoundError(DatasetError):
    pass


class StaleDatasetWarning(UserWarning):
    """A generated file was made from other sources (e.g. policy snapshots) than the current ones."""


SOURCE_ATTR_PREFIX = "source_"  # HDF5 attribute prefix of TaskSpec.dataset_sources entries


# --- where files live ----------------------------------------------------------------------
def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir).expanduser())
    if os.environ.get("D4RL_DATASET_DIR"):
        dirs.append(Path(os.environ["D4RL_DATASET_DIR"]).expanduser())
    dirs += [Path("~/.d4rl/datasets").expanduser(), LOCAL_DATA_DIR]
    return dirs


def write_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Where a generated or downloaded dataset is written."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("D4RL_DATASET_DIR"):
        return Path(os.environ["D4RL_DATASET_DIR"]).expanduser()
    return LOCAL_DATA_DIR


def find_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    spec = get_task(name)
    for folder in search_dirs(data_dir):
        if (folder / spec.dataset_file).is_file():
            return folder / spec.dataset_file
    return None


# --- reading and validating ----------------------------------------------------------------
def _dataset_keys(f: h5py.File) -> list[str]:
    keys: list[str] = []
    f.visititems(lambda name, item: keys.append(name) if isinstance(item, h5py.Dataset) else None)
    return keys


def read_dataset(path: str | os.PathLike, spec: TaskSpec | None = None) -> dict[str, np.ndarray]:
    """All arrays of a D4RL-layout HDF5 file, checked against the task's sizes.

    Raises DatasetError naming the file and the missing or mis-shaped key.
    """
    path = Path(path)
    fix = ("delete it and run `python -m tasks generate <env>` (generated tasks) or put an intact "
           "copy of D4RL's file there")
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file (truncated or corrupt?): {exc}; {fix}") from None
    data: dict[str, np.ndarray] = {}
    with f:
        keys = _dataset_keys(f)
        for key in REQUIRED_KEYS:
            if key not in keys:
                raise DatasetError(f"{path} has no '{key}' array (found: {', '.join(keys) or 'none'}); "
                                   f"not a D4RL-layout dataset: {fix}")
        for key in keys:
            try:
                data[key] = f[key][()]
            except (OSError, ValueError, KeyError) as exc:
                raise DatasetError(f"{path}: array '{key}' cannot be read (truncated or corrupt?): {exc}; {fix}") from None
    _check_shapes(path, data, spec)
    _check_finite(path, data)
    return data


def _check_finite(path: Path, data: dict[str, np.ndarray]) -> None:
    """NaN or inf in the arrays every learner reads would surface much later as a diverged loss; name
    the array and its first bad rows here instead."""
    for key in ("observations", "actions", "rewards"):
        bad = ~np.isfinite(data[key])
        if bad.any():
            rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))
            shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise DatasetError(f"{path}: array '{key}' holds NaN or inf in {len(rows)} rows ({shown}); the file is "
                               "damaged or was written from a diverged policy: regenerate it (`python -m tasks "
                               "generate <env> --overwrite`) or put an intact copy of D4RL's file there")


def _check_shapes(path: Path, data: dict[str, np.ndarray], spec: TaskSpec | None) -> None:
    n = len(data["observations"])
    for key in ("rewards", "terminals", "timeouts"):  # D4RL accepts (N, 1) and flattens it
        if key in data and data[key].shape == (n, 1):
            data[key] = data[key][:, 0]
    expected = {"observations": (n, spec.obs_dim if spec else None),
                "actions": (n, spec.act_dim if spec else None),
                "rewards": (n,), "terminals": (n,), "timeouts": (n,)}
    for key, shape in expected.items():
        if key not in data:
            continue
        got = data[key].shape
        if len(got) != len(shape) or any(e is not None and g != e for g, e in zip(got, shape)):
            want = "(" + ", ".join("?" if e is None else str(e) for e in shape) + ")"
            raise DatasetError(f"{path}: array '{key}' has shape {got}, expected {want}"
                               + (f" for {spec.name}" if spec else "") + "; the file belongs to another "
                               "task or is damaged")
    for key, arr in data.items():
        if key.startswith("infos/") and len(arr) != n:
            raise DatasetError(f"{path}: array '{key}' has {len(arr)} rows, observations has {n}")


def dataset_provenance(path: str | os.PathLike) -> dict[str, object]:
    """The HDF5 root attributes (generator, version, seed, steps, ...); empty for D4RL's files."""
    try:
        with h5py.File(path, "r") as f:
            return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file: {exc}") from None


# --- writing, generating, downloading ------------------------------------------------------
@functools.cache
def code_version() -> str:
    """The repository's short commit, `<commit>+dirty` when tracked files differ from it, read once
    per process: a run that spans a commit (a long cell while work goes on) reports the code it
    started with in every file it writes."""
    commit = git_commit(short=True)
    if commit is None:
        return "unknown"
    return commit + ("+dirty" if git_dirty() else "")


def write_dataset(path: str | os.PathLike, data: dict[str, np.ndarray], attrs: dict[str, object]) -> Path:
    """Write arrays (gzip, as D4RL) to a temp file, then rename: an interrupted write leaves nothing."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, arr in data.items():
                f.create_dataset(key, data=arr, compression="gzip")
            for key, value in attrs.items():
                f.attrs[key] = value
    return path


def generate_dataset(name: str, out: str | os.PathLike | None = None, steps: int | None = None,
                     seed: int = 0, data_dir: str | os.PathLike | None = None,
                     overwrite: bool = False, show_progress: bool = True) -> Path:
    """Regenerate a task's dataset with D4RL's procedure and write it in D4RL's layout."""
    spec = get_task(name)
    if spec.generate is None:
        raise DatasetError(f"{name} cannot be generated locally (yet); put D4RL's {spec.dataset_file} "
                           f"in one of: {', '.join(map(str, search_dirs(data_dir)))}")
    steps = spec.default_dataset_steps if steps is None else int(steps)
    if steps < 2:
        raise ValueError(f"--steps must be at least 2, got {steps}")
    path = Path(out) if out else write_dir(data_dir) / spec.dataset_file
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it, or --out another path")
    sources = current_sources(spec)  # read before generating: what the data below is made from
    data = spec.generate(spec, steps, seed, show_progress)
    attrs = {"env": name, "generator": f"tasks ({spec.domain}): D4RL's generation procedure",
             "generator_version": DATASET_FORMAT_VERSION, "code_version": code_version(),
             "seed": seed, "steps": steps, "mujoco_version": mujoco.__version__,
             "numpy_version": np.__version__,
             "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    attrs.update({SOURCE_ATTR_PREFIX + key: value for key, value in sources.items()})
    return write_dataset(path, data, attrs)


def current_sources(spec: TaskSpec) -> dict[str, str]:
    return spec.dataset_sources() if spec.dataset_sources else {}


def stale_sources(path: str | os.PathLike, spec: TaskSpec) -> list[str]:
    """The sources a generated file was made from that differ from the current ones, one line each
    ("expert_sha256: 9b83b407... in the file, 1861f433... now"); empty for D4RL's own files."""
    stored = dataset_provenance(path)
    lines = []
    for key, now in current_sources(spec).items():
        then = stored.get(SOURCE_ATTR_PREFIX + key)
        if then is not None and then != now:
            lines.append(f"{key}: {str(then)[:12]} in the file, {now[:12]} now")
    return lines


def warn_if_stale(path: str | os.PathLike, spec: TaskSpec) -> None:
    stale = stale_sources(path, spec)
    if stale:
        warnings.warn(f"{path} was generated from other sources than {spec.name}'s current ones "
                      f"({'; '.join(stale)}): it is not the dataset this code makes now. Regenerate it with "
                      f"`python -m tasks generate {spec.name} --overwrite` (or keep it knowingly).",
                      StaleDatasetWarning, stacklevel=3)


def download_dataset(spec: TaskSpec, dest: Path, timeout_s: float = 30.0) -> Path:
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(spec.dataset_url, timeout=timeout_s) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
    return dest


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, generate: bool = True,
                 download: bool = True, show_progress: bool = True) -> dict[str, np.ndarray]:
    """The task's dataset as a dict of numpy arrays (D4RL's get_dataset)."""
    spec = get_task(name)
    path = find_dataset(name, data_dir)
    if path is None and ((generate and spec.generate is not None) or (download and spec.dataset_url)):
        path = make_missing_dataset(spec, data_dir, generate, download, show_progress)
    if path is None:
        raise DatasetNotFoundError(
            f"no dataset for {name}: put {spec.dataset_file} in one of "
            f"{', '.join(map(str, search_dirs(data_dir)))} (or pass --data-dir)")
    warn_if_stale(path, spec)
    return read_dataset(path, spec)


def make_missing_dataset(spec: TaskSpec, data_dir: str | os.PathLike | None, generate: bool, download: bool,
                         show_progress: bool) -> Path | None:
    """Generate (or else download) a dataset that is in no search folder. One process makes it: others
    asking for it meanwhile (a grid's cells, two commands) wait for that one and read its file."""
    dest = write_dir(data_dir) / spec.dataset_file

    def say_who_is_awaited(holder: str) -> None:
        print(f"waiting for {holder} to make {dest}", file=sys.stderr, flush=True)

    with waiting_lock(dest.with_name(f".{dest.name}.lock"), say_who_is_awaited):
        path = find_dataset(spec.name, data_dir)  # made by the process waited for
        if path is None and generate and spec.generate is not None:
            path = generate_dataset(spec.name, data_dir=data_dir, show_progress=show_progress)
        if path is None and download and spec.dataset_url:
            try:
                path = download_dataset(spec, dest)
            except OSError as exc:
                raise DatasetNotFoundError(
                    f"no dataset for {spec.name}: {spec.dataset_file} is in none of "
                    f"{', '.join(map(str, search_dirs(data_dir)))}, and downloading {spec.dataset_url} "
                    f"failed ({exc}). Put the file in one of those folders (or pass --data-dir).") from None
    return path


# --- D4RL's views of a dataset -------------------------------------------------------------
def episode_timeouts(dataset: dict[str, np.ndarray], max_episode_steps: int | None = None) -> np.ndarray:
    """`timeouts`, or for old files without it D4RL's fallback: every max_episode_steps-th step
    of an episode (episodes also restart after a terminal)."""
    if "timeouts" in dataset:
        return dataset["timeouts"].astype(bool)
    if max_episode_steps is None:
        raise DatasetError("the dataset has no 'timeouts'; pass max_episode_steps to infer them")
    terminals = dataset["terminals"].astype(bool)
    timeouts = np.zeros(len(terminals), bool)
    episode_step = 0
    for i in range(len(terminals)):
        if episode_step == max_episode_steps - 1:
            timeouts[i] = True
        if timeouts[i] or terminals[i]:
            episode_step = 0
        else:
            episode_step += 1
    return timeouts


def qlearning_dataset(dataset: dict[str, np.ndarray], terminate_on_end: bool = False,
                      max_episode_steps: int | None = None) -> dict[str, np.ndarray]:
    """D4RL's qlearning_dataset: (s, a, r, s', done) rows with s' = observations[i + 1].

    Row i is dropped where timeouts[i] is set (its successor belongs to the next episode) unless
    terminate_on_end; the last row of the file is always dropped. `terminals` keeps the dataset's
    terminal flags (timeouts are not terminals).
    """
    timeouts = episode_timeouts(dataset, max_episode_steps)
    n = len(dataset["rewards"])
    keep = np.arange(n - 1)
    if not terminate_on_end:
        keep = keep[~timeouts[:-1]]
    obs = dataset["observations"].astype(np.float32)
    return {
        "observations": obs[keep],
        "actions": dataset["actions"][keep].astype(np.float32),
        "next_observations": obs[keep + 1],
        "rewards": dataset["rewards"][keep].astype(np.float32),
        "terminals": dataset["terminals"][keep].astype(bool),
    }


def trajectories(dataset: dict[str, np.ndarray], drop_incomplete: bool = True,
                 max_episode_steps: int | None = None) -> list[dict[str, np.ndarray]]:
    """Episodes split after each terminal or timeout (the flagged step ends its episode).

    Every per-step array of the dataset is sliced (infos/* included). A tail that ends without
    a flag is dropped unless drop_incomplete=False (as CORL's DT loader does).
    """
    timeouts = episode_timeouts(dataset, max_episode_steps)
    ends = np.flatnonzero(dataset["terminals"].astype(bool) | timeouts)
    n = len(dataset["observations"])
    bounds = list(zip(np.r_[0, ends[:-1] + 1], ends + 1)) if len(ends) else []
    if not drop_incomplete and (not len(ends) or ends[-1] + 1 < n):
        bounds.append((ends[-1] + 1 if len(ends) else 0, n))
    per_step = {k: v for k, v in dataset.items() if isinstance(v, np.ndarray) and v.ndim and len(v) == n}
    per_step.setdefault("timeouts", timeouts)
    return [{k: v[start:end] for k, v in per_step.items()} for start, end in bounds]
