"""Actor snapshots (the data-collection policies) as small versioned files, and batch policies.

A snapshot is two files side by side:
- `<name>.pt`: {"format", "obs_dim", "act_dim", "hidden", "state_dict"} (float32 tensors of the SAC
  actor: trunk.0, trunk.2, mean, log_std), read with torch.load(weights_only=True) only;
- `<name>.json`: what it is: training return and step, normalised score, the SAC settings, code
  and torch versions, and the sha256 of the .pt (checked on load).
The committed ones live in tasks/halfcheetah/assets/ (medium.*, expert.*).

Acting uses numpy, one observation row at a time, so an episode's actions never depend on how many
episodes run beside it (a batched matmul may round differently from a single row).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.atomic import atomic_path, write_json_atomic
from common.checkpoint import file_sha256

SNAPSHOT_FORMAT = 1
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class SnapshotError(ValueError):
    """A snapshot is missing, unreadable, damaged or of another shape (a ValueError, so the CLIs
    report it as one line)."""


def asset_path(name: str) -> Path:
    """A committed snapshot: tasks/halfcheetah/assets/<name>.pt (tasks.halfcheetah.ASSETS_DIR)."""
    import tasks.halfcheetah as package

    return package.ASSETS_DIR / f"{name}.pt"


def save_snapshot(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], obs_dim: int, act_dim: int,
                  hidden: int, meta: dict[str, Any]) -> Path:
    """Write `<path>` (.pt) and its `.json` sidecar atomically (the .pt first, so a sidecar never
    describes a file that is not there)."""
    path = Path(path)
    blob = {"format": SNAPSHOT_FORMAT, "obs_dim": obs_dim, "act_dim": act_dim, "hidden": hidden,
            "state_dict": {k: v.detach().to("cpu", torch.float32).clone() for k, v in state_dict.items()}}
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)
    sidecar = dict(meta, file=path.name, sha256=file_sha256(path), format=SNAPSHOT_FORMAT,
                   torch_version=torch.__version__)
    write_json_atomic(path.with_suffix(".json"), sidecar)
    return path


def read_snapshot_meta(path: str | os.PathLike) -> dict[str, Any]:
    side = Path(path).with_suffix(".json")
    if not side.is_file():
        raise SnapshotError(f"{side} (the sidecar of {Path(path).name}) is missing")
    return json.loads(side.read_text())


class NumpyActor:
    """The tanh-Gaussian SAC actor: trunk obs-256-256 (ReLU), heads mean and log_std (clipped to
    [-20, 2]); action tanh(mean + std eps)."""

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        sd = {k: v.numpy().astype(np.float32) for k, v in state_dict.items()}
        self.layers = [(sd["trunk.0.weight"].T.copy(), sd["trunk.0.bias"]),
                       (sd["trunk.2.weight"].T.copy(), sd["trunk.2.bias"])]
        self.w_mean, self.b_mean = sd["mean.weight"].T.copy(), sd["mean.bias"]
        self.w_std, self.b_std = sd["log_std.weight"].T.copy(), sd["log_std.bias"]
        self.obs_dim, self.act_dim = self.layers[0][0].shape[0], self.w_mean.shape[1]

    def dist(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, log_std) of one observation (obs_dim,)."""
        h = np.asarray(obs, np.float32)
        for w, b in self.layers:
            h = np.maximum(h @ w + b, 0.0)
        return h @ self.w_mean + self.b_mean, np.clip(h @ self.w_std + self.b_std, LOG_STD_MIN, LOG_STD_MAX)

    def act(self, obs: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, float]:
        """(action float32 (act_dim,), its log-probability); rng None -> the deterministic tanh(mean)
        (log-probability then that of u = mean)."""
        mean, log_std = self.dist(obs)
        eps = np.zeros_like(mean) if rng is None else rng.standard_normal(self.act_dim).astype(np.float32)
        u = mean + np.exp(log_std) * eps
        logp = float(np.sum(-0.5 * eps.astype(np.float64) ** 2 - log_std - _HALF_LOG_2PI)
                     - np.sum(2.0 * (math.log(2.0) - u - np.logaddexp(0.0, -2.0 * u))))
        return np.tanh(u).astype(np.float32), logp


def read_snapshot(path: str | os.PathLike, obs_dim: int | None = None,
                  act_dim: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the .pt's contents {"format", "obs_dim", "act_dim", "hidden", "state_dict"}, sidecar
    metadata); torch.load(weights_only=True), sha256 and shapes checked."""
    path = Path(path)
    if not path.is_file():
        raise SnapshotError(f"no actor snapshot at {path}; train one with `python -m tasks.halfcheetah.sac` "
                            "(see docs/tasks.md, halfcheetah)")
    meta = read_snapshot_meta(path)
    if meta.get("sha256") != file_sha256(path):
        raise SnapshotError(f"{path} does not match the sha256 in its sidecar {path.with_suffix('.json').name}: "
                            "one of the two was replaced or damaged")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, refused unpickling, ...
        raise SnapshotError(f"{path} is not a readable actor snapshot: {type(exc).__name__}: {exc}") from None
    if not isinstance(blob, dict) or blob.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{path}: unknown snapshot format {blob.get('format') if isinstance(blob, dict) else type(blob)}")
    for name, want in (("obs_dim", obs_dim), ("act_dim", act_dim)):
        if want is not None and blob[name] != want:
            raise SnapshotError(f"{path}: snapshot has {name}={blob[name]}, the task needs {want}")
    return blob, meta


def load_snapshot(path: str | os.PathLike, obs_dim: int | None = None,
                  act_dim: int | None = None) -> tuple[NumpyActor, dict[str, Any]]:
    """(actor, sidecar metadata); see read_snapshot."""
    blob, meta = read_snapshot(path, obs_dim, act_dim)
    return NumpyActor(blob["state_dict"]), meta


class SnapshotPolicy:
    """A batch policy (tasks.evaluation) running a snapshot row by row; `stochastic` samples actions
    as the datasets do (episode e of seed s draws from rng (s, e, 3)), else tanh(mean).

    `source` names the weights it runs ({"file", "sha256"} of the snapshot): `python -m tasks
    evaluate` stores it with a result and will not report a stored result made with other weights."""

    def __init__(self, actor: NumpyActor, seed: int = 0, stochastic: bool = True,
                 source: dict[str, str] | None = None):
        self.actor, self.seed, self.stochastic = actor, seed, stochastic
        self.source = source
        self.rngs: list[np.random.Generator | None] = []

    def reset(self, episode_ids: np.ndarray) -> None:
        self.rngs = [np.random.default_rng([self.seed, int(e), 3]) if self.stochastic else None
                     for e in episode_ids]

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if len(self.rngs) != len(obs):
            self.reset(np.arange(len(obs)))
        return np.stack([self.actor.act(o, rng)[0] for o, rng in zip(obs, self.rngs)])
