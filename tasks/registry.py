"""The task registry, keyed by D4RL names.

Each entry says how to build the env, its time limit, D4RL's reference scores, the dataset's
file name (D4RL's own, so real D4RL files are found in D4RL's cache) and how the dataset is
obtained: `generate` (made locally with D4RL's procedure) and/or `dataset_url` (D4RL's server).
Adding a task is one `register(TaskSpec(...))` call.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

import gymnasium as gym
import numpy as np

from common.errors import InputError

D4RL_SERVER = "http://rail.eecs.berkeley.edu/datasets/offline_rl"


@dataclass(frozen=True)
class TaskSpec:
    name: str                                   # D4RL name, e.g. "maze2d-umaze-v1"
    domain: str                                 # "maze2d", later "antmaze", "halfcheetah"
    make_env: Callable[[], gym.Env]             # the env without its time limit
    max_episode_steps: int
    ref_min_score: float                        # D4RL's REF_MIN (random policy)
    ref_max_score: float                        # D4RL's REF_MAX (expert / controller)
    obs_dim: int
    act_dim: int
    dataset_file: str                           # D4RL's HDF5 file name
    dataset_url: str | None = None              # D4RL's download address, if any
    # generate(spec, steps, seed, show_progress) -> dict of arrays in D4RL's layout
    generate: Callable[["TaskSpec", int, int, bool], dict[str, np.ndarray]] | None = None
    # dataset_sources() -> {name: id} of what `generate` reads besides code and seed (e.g. a committed
    # policy's sha256): stored in a generated file, checked against the current ones when it is loaded
    dataset_sources: Callable[[], dict[str, str]] | None = None
    default_dataset_steps: int = 1_000_000      # D4RL's dataset size
    dataset_keys: tuple[str, ...] = ("observations", "actions", "rewards", "terminals", "timeouts")
    # scripted policies besides "random": name -> factory(spec, seed, d4rl_protocol) -> batch policy
    scripted_policies: dict[str, Callable] = field(default_factory=dict)

    def normalized_score(self, returns):
        """D4RL's normalised score on the 0-100 scale (0 random, 100 expert)."""
        return 100.0 * (np.asarray(returns, dtype=np.float64) - self.ref_min_score) / (
            self.ref_max_score - self.ref_min_score)


TASKS: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    if spec.name in TASKS:
        raise ValueError(f"task {spec.name!r} is registered twice")
    TASKS[spec.name] = spec
    return spec


class UnknownTaskError(InputError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def get_task(name: str) -> TaskSpec:
    """The spec of a D4RL task; an unknown name raises an error listing the known names."""
    try:
        return TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), TASKS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownTaskError(
            f"unknown env name {name!r}.{hint} Known names: {', '.join(sorted(TASKS))}") from None


def _register_maze2d() -> None:
    from tasks.maze2d import MAZE2D_TASKS, generate_maze2d_task, make_controller_policy, make_maze2d_env

    for name, (layout, limit, ref_min, ref_max, steps) in MAZE2D_TASKS.items():
        file_name = f"{name.rsplit('-', 1)[0]}-sparse-v1.hdf5"
        register(TaskSpec(
            name=name, domain="maze2d", make_env=lambda layout=layout: make_maze2d_env(layout),
            max_episode_steps=limit, ref_min_score=ref_min, ref_max_score=ref_max,
            obs_dim=4, act_dim=2, dataset_file=file_name,
            dataset_url=f"{D4RL_SERVER}/maze2d/{file_name}", generate=generate_maze2d_task,
            default_dataset_steps=steps,
            dataset_keys=("observations", "actions", "rewards", "terminals", "timeouts",
                          "infos/goal", "infos/qpos", "infos/qvel"),
            scripted_policies={"controller": make_controller_policy},
        ))


_register_maze2d()


def _register_antmaze() -> None:
    from tasks.antmaze import (ANTMAZE_TASKS, EXPERT_MODES, generate_antmaze_task, make_antmaze_env,
                               make_expert_factory)

    for name, (recipe, limit, file_name, url) in ANTMAZE_TASKS.items():
        register(TaskSpec(
            name=name, domain="antmaze", make_env=lambda maze=recipe.maze: make_antmaze_env(maze),
            max_episode_steps=limit, ref_min_score=0.0, ref_max_score=1.0,
            obs_dim=29, act_dim=8, dataset_file=file_name, dataset_url=url,
            generate=generate_antmaze_task, default_dataset_steps=1_000_000,
            dataset_keys=("observations", "actions", "rewards", "terminals", "timeouts",
                          "infos/goal", "infos/qpos", "infos/qvel"),
            scripted_policies={policy: make_expert_factory(mode) for policy, mode in EXPERT_MODES.items()},
        ))


_register_antmaze()


def _register_halfcheetah() -> None:
    from tasks.halfcheetah import (DATASET_KEYS, HALFCHEETAH_TASKS, MAX_EPISODE_STEPS, REF_MAX, REF_MIN,
                                   SCRIPTED_POLICIES, dataset_steps, make_generator, make_halfcheetah_env,
                                   make_sources)

    for name, (kind, file_name) in HALFCHEETAH_TASKS.items():
        register(TaskSpec(
            name=name, domain="halfcheetah", make_env=make_halfcheetah_env,
            max_episode_steps=MAX_EPISODE_STEPS, ref_min_score=REF_MIN, ref_max_score=REF_MAX,
            obs_dim=17, act_dim=6, dataset_file=file_name,
            dataset_url=f"{D4RL_SERVER}/gym_mujoco_v2/{file_name}", generate=make_generator(kind),
            dataset_sources=make_sources(kind), default_dataset_steps=dataset_steps(kind),
            dataset_keys=DATASET_KEYS,
            scripted_policies=dict(SCRIPTED_POLICIES),
        ))


_register_halfcheetah()
