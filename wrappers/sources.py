"""Intent sources: what gets appended to a worker's observations.

An intent source has
  - `intent_dim`: size of one intent vector;
  - `k`: how many rows ahead the dataset augmenter looks for the paired future state
    (None: the source ignores the future state);
  - `intent_low`, `intent_high`: bounds of the intent part of the observation space;
  - `pair_intents(obs_t, obs_future) -> (N, intent_dim) float32`: dataset relabelling;
  - `plan_intents(obs) -> (N, intent_dim) float32`: evaluation, called once per env step;
  - `reset()` (new episodes start) and `reseed(seed)` (start the source's randomness over).

Two sources:
  - `ManagerIntentSource`: the exported Manager (paper section 4, eq. 5) through
    `manager.inference.ManagerIntents`;
  - `RandomIntentSource`: the paper's Table 3 ablation, uniform(0, 1) vectors drawn independently
    for every dataset state and every evaluation step.
"""
from __future__ import annotations

import os
from typing import Protocol

import numpy as np
import torch

INTENT_CHOICES = ("none", "manager", "random")
DEFAULT_INTENT_DIM = 10  # the Manager's latent size (paper Table 8)


class IntentSource(Protocol):
    intent_dim: int
    k: int | None
    intent_low: float
    intent_high: float

    def pair_intents(self, obs_t, obs_future) -> np.ndarray: ...
    def plan_intents(self, obs) -> np.ndarray: ...
    def reset(self) -> None: ...
    def reseed(self, seed: int) -> None: ...


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


class ManagerIntentSource:
    """Intents g = f(z, a) - z from an exported Manager (`manager.pt` of `make manager`).

    Refuses a Manager trained for another env or observation size (manager.checkpoint.CheckpointError).
    The Manager's planner is batched: `plan_intents` plans for all rows in one call.
    """

    intent_low = -np.inf
    intent_high = np.inf

    def __init__(self, path: str | os.PathLike, env: str | None, obs_dim: int,
                 device: str | torch.device | None = None, seed: int = 0, compile_planner: bool = False):
        from manager.inference import ManagerIntents

        self.path, self.env, self.seed = str(path), env, seed
        self.manager = ManagerIntents(path, env=env, obs_dim=obs_dim, device=device, seed=seed)
        if compile_planner:  # torch.compile the planner that runs at every evaluation step
            self.manager.planner.compile()
        self.k: int | None = int(self.manager.k)
        self.intent_dim = int(self.manager.intent_dim)
        self.obs_dim = int(self.manager.obs_dim)
        self.device = self.manager.device

    def pair_intents(self, obs_t, obs_future) -> np.ndarray:
        """Dataset relabelling: a = most likely class of b(z_t, z_{t+k}) per categorical (deterministic)."""
        return _as_numpy(self.manager.pair_intents(obs_t, obs_future))

    def plan_intents(self, obs) -> np.ndarray:
        """Evaluation: a = first action of the Manager's plan from z_t, re-planned at every call."""
        return _as_numpy(self.manager.plan_intents(obs))

    def reset(self) -> None:
        self.manager.planner.reset()

    def reseed(self, seed: int) -> None:
        """Restart the planner's sampling from `seed` (the same plans at every evaluation)."""
        self.seed = seed
        self.manager.planner.reseed(seed)

    def __repr__(self) -> str:
        return f"ManagerIntentSource({self.path!r}, env={self.env!r}, k={self.k}, intent_dim={self.intent_dim})"


class RandomIntentSource:
    """Paper Table 3 ablation: uniform(0, 1) vectors of `intent_dim`, no checkpoint.

    Every call draws fresh vectors, one per row: `pair_intents` (dataset states) ignores both
    observations and only uses their count; `plan_intents` (evaluation) draws one per env per step.
    Dataset and evaluation draws come from two separate numpy Generators seeded from (seed, 0) and
    (seed, 1), so evaluating does not change what augmenting a dataset produces and vice versa.
    """

    k: int | None = None  # random intents do not look at a future state
    intent_low = 0.0
    intent_high = 1.0

    def __init__(self, intent_dim: int = DEFAULT_INTENT_DIM, seed: int = 0):
        if int(intent_dim) < 1:
            raise ValueError(f"intent_dim must be >= 1, got {intent_dim}")
        self.intent_dim = int(intent_dim)
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Start both streams over, as if freshly made with `seed`."""
        self.seed = int(seed)
        self.data_rng = np.random.default_rng([self.seed, 0])
        self.eval_rng = np.random.default_rng([self.seed, 1])

    def reset(self) -> None:
        """Nothing to do: every step's draw is already independent of the episode."""

    def _draw(self, rng: np.random.Generator, obs) -> np.ndarray:
        n = len(obs)
        return rng.random((n, self.intent_dim), dtype=np.float32)

    def pair_intents(self, obs_t, obs_future=None) -> np.ndarray:
        return self._draw(self.data_rng, obs_t)

    def plan_intents(self, obs) -> np.ndarray:
        return self._draw(self.eval_rng, obs)

    def __repr__(self) -> str:
        return f"RandomIntentSource(intent_dim={self.intent_dim}, seed={self.seed})"


def as_intent_source(source, obs_dim: int | None, uses: str):
    """What the wrapper (`uses` "plan_intents") and the augmenter ("pair_intents") accept as
    `source`: an intent source itself, or the path of an exported Manager (`manager.pt`), loaded as
    a ManagerIntentSource for observations of size `obs_dim` (a Manager for another size is
    refused, an intent source object too) on the default device. `obs_dim` None (an empty list of
    trajectories): nothing to check it against."""
    if isinstance(source, (str, os.PathLike)):
        return ManagerIntentSource(source, env=None, obs_dim=obs_dim)
    missing = [name for name in ("intent_dim", uses) if not hasattr(source, name)]
    if missing:
        raise TypeError(f"expected an intent source (ManagerIntentSource, RandomIntentSource, make_intent_source) "
                        f"or the path of a manager.pt, got {type(source).__name__} (it lacks {', '.join(missing)})")
    expected = getattr(source, "obs_dim", None)  # a Manager's; random intents fit any size
    if expected is not None and obs_dim is not None and int(expected) != obs_dim:
        where = "the env gives" if uses == "plan_intents" else "the dataset has"
        raise ValueError(f"{source!r} expects observations of size {int(expected)}, {where} {obs_dim}: it belongs to "
                         "another task; use a Manager trained on this one (make manager ENV=<its name>)")
    return source


def make_intent_source(intent: str, manager_path: str | os.PathLike | None, env: str, obs_dim: int,
                       intent_dim: int = DEFAULT_INTENT_DIM, device: str | torch.device | None = None,
                       seed: int = 0, compile_planner: bool = False
                       ) -> ManagerIntentSource | RandomIntentSource | None:
    """The intent source for a worker's `intent` setting: None for "none". `compile_planner`:
    torch.compile the Manager's planner (intent=manager)."""
    if intent == "none":
        return None
    if intent == "manager":
        if manager_path is None or str(manager_path) == "":
            raise ValueError(f"intent='manager' needs a Manager checkpoint: train one with "
                             f"`make manager ENV={env}` (it writes runs/{env}/manager/seed<k>/manager.pt) "
                             "and pass its path")
        return ManagerIntentSource(manager_path, env=env, obs_dim=obs_dim, device=device, seed=seed,
                                   compile_planner=compile_planner)
    if intent == "random":
        return RandomIntentSource(intent_dim, seed=seed)
    raise ValueError(f"unknown intent {intent!r}; choose one of {'|'.join(INTENT_CHOICES)}")
