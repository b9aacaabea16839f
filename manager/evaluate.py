"""Score trained flat agents again: `python -m manager evaluate RUN_DIR [RUN_DIR ...] [--episodes N] [--seed S]`.

Loads a flat run's checkpoint.pt (IQL-TD-MPC or TD-MPC: the world model, the agent config, the
observation statistics, the step; a finished run, or one still training or stopped, at its last
checkpoint) and evaluates batched MPC with it as the run's final evaluation did (the planner seeded
with the evaluation seed, the run's number of envs at once). With the run's seed and episode count
(the defaults) it replays final.json's score; other seeds or more episodes give a fresh estimate.
The result goes to `<run>/evaluations/episodes<N>_seed<S>.json` (common/evaluations.py); several
folders end with a table of mean +- std over them. A Manager
run is not an env policy (it acts every k steps in a discrete space): score the workers that use its
intents (`python -m corl evaluate`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from common.checkpoint import load_checkpoint
from common.cli import parse_config
from common.device import resolve_device
from common.errors import InputError
from common.evaluations import EvaluateConfig, compare_with_final, result_path, run_evaluation
from common.machine import device_description
from common.normalization import observation_stats
from manager.checkpoint import config_from_dict
from manager.inference import LatentPlanner
from manager.world_model import WorldModel
from tasks import evaluate_policy, get_normalized_score, get_task, load_dataset
from tasks.datasets import code_version


def load_flat_run(run_dir: Path, device: torch.device) -> dict[str, Any]:
    """A flat run's checkpoint.pt, refused with the fix when it is missing or a Manager's."""
    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"{run_dir} holds no checkpoint.pt: give a flat agent's run folder, "
                         "runs/<env>/<iql_td_mpc|td_mpc>/seed<k>, whose training has written one")
    state = load_checkpoint(path, device)
    if "agent" not in state or "train" not in state:
        raise InputError(f"{path} is not a flat agent's checkpoint (python -m manager train writes those); a "
                         "worker's is scored by python -m corl evaluate")
    if state["train"]["mode"] == "manager":
        raise InputError(f"{run_dir} is a Manager run: it acts every k steps through its workers' intents, not in "
                         "the env; score a worker that uses it (python -m corl evaluate RUN_DIR)")
    return state


def observation_statistics(state: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The statistics the agent was trained with: stored in the checkpoint, or (checkpoints written
    before they were) recomputed from the run's dataset as its sampler did."""
    if "obs_mean" in state:
        return state["obs_mean"], state["obs_std"]
    train = state["train"]
    observations = np.asarray(load_dataset(train["env"], train.get("data_dir"))["observations"], dtype=np.float32)
    mean, std = observation_stats(observations)
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)


def evaluate_loaded(run_dir: Path, state: dict, episodes: int, seed: int, device: torch.device) -> dict[str, Any]:
    train = state["train"]
    env = train["env"]
    cfg = config_from_dict(state["config"])
    model = WorldModel(state["obs_dim"], state.get("act_dim") or get_task(env).act_dim, cfg).to(device)
    model.load_state_dict(state["agent"]["model"])
    mean, std = observation_statistics(state)
    planner = LatentPlanner(model, cfg, mean, std, device, seed=seed)  # as Trainer.finish, seeded by the evaluation
    start = time.perf_counter()
    returns = evaluate_policy(env, planner, episodes, seed=seed, num_envs=train["eval_num_envs"])
    scores = get_normalized_score(env, returns)  # (episodes,)
    result: dict[str, Any] = {
        "run_dir": str(run_dir), "env": env, "mode": train["mode"], "seed": train["seed"],
        "checkpoint_step": int(state["agent"]["step"]), "steps": train["steps"], "eval_seed": seed,
        "episodes": episodes, "mean_return": float(returns.mean()), "normalized_score": float(scores.mean()),
        "normalized_score_std": float(scores.std()), "device": str(device), "machine": device_description(device),
        "eval_wall_s": time.perf_counter() - start, "code_version": code_version()}
    compare_with_final(result, run_dir, seed == train["seed"] and episodes == train["eval_episodes"])
    return result


def evaluate_run(run_dir: str | Path, episodes: int = 0, seed: int = -1, device: str = "auto") -> dict[str, Any]:
    """Evaluate a flat run's checkpoint (see the module's docstring); returns the result (not written)."""
    torch_device = resolve_device(device)
    state = load_flat_run(Path(run_dir), torch_device)
    train = state["train"]
    return evaluate_loaded(Path(run_dir), state, episodes or train["eval_episodes"],
                           train["seed"] if seed < 0 else seed, torch_device)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(EvaluateConfig, "python -m manager evaluate", __doc__, list(argv or []))

    def load(run_dir: Path, cfg: EvaluateConfig):
        device = resolve_device(cfg.device)
        state = load_flat_run(run_dir, device)
        episodes = cfg.episodes or state["train"]["eval_episodes"]
        seed = state["train"]["seed"] if cfg.seed < 0 else cfg.seed
        return (result_path(run_dir, episodes, seed), int(state["agent"]["step"]),
                lambda: evaluate_loaded(run_dir, state, episodes, seed, device))

    return run_evaluation(cfg, load)
