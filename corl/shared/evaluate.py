"""Score trained workers again: `python -m corl evaluate RUN_DIR [RUN_DIR ...] [--episodes N] [--seed S]`.

Loads the run folder's checkpoint.pt (its weights, normalisation stats, config and step: a finished
run, or one still training or stopped, at its last checkpoint), rebuilds the worker's algorithm
and evaluation env exactly as the run did (same intents: the Manager of the run, or random ones;
the same number of envs at once) and evaluates it. With the run's own seed and
`final_eval_episodes` it replays the run's final evaluation, the same numbers as final.json
(checked and said); other seeds or more episodes give a fresh estimate. The result goes to
`<run>/evaluations/episodes<N>_seed<S>.json` (atomic; an existing one is reported, not redone,
unless --overwrite) and is printed as key=value lines; several folders (a grid's seeds:
`runs/<env>/bc/manager/seed*`) end with a table of mean +- std over them.
"""
from __future__ import annotations

import importlib
import time
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import torch

from common.checkpoint import load_checkpoint
from common.cli import parse_config
from common.device import resolve_device
from common.errors import InputError
from common.evaluations import EvaluateConfig, compare_with_final, result_path, run_evaluation
from common.machine import device_description
from corl.shared.config import WorkerConfig
from corl.shared.run import (NormalizedPolicy, env_dims, eval_env_count, eval_targets, manager_path,
                             scores_at_targets)
from tasks import get_task, make_vector_env
from tasks.datasets import code_version
from wrappers import make_intent_source, wrap_env


def load_worker(run_dir: Path, device: torch.device) -> tuple[WorkerConfig, Any, dict]:
    """(config, worker module, checkpoint state) of a run folder, the config rebuilt from the
    checkpoint's copy with the worker file's own config class."""
    from corl.__main__ import WORKERS  # (the registry of worker files; imported late: it imports nothing else)

    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"{run_dir} holds no checkpoint.pt: give a worker's run folder, "
                         "runs/<env>/<algo>/<intent>/seed<k>, whose training has written one")
    state = load_checkpoint(path, device)
    if "algo" not in state or "algo" not in state.get("config", {}):
        raise InputError(f"{path} is not a worker's checkpoint (python -m corl ALGO writes those); a flat agent's "
                         "is scored by python -m manager evaluate")
    saved = state["config"]
    module = importlib.import_module(WORKERS[saved["algo"]])
    config_class = typing.get_type_hints(module.train)["cfg"]
    cfg = config_class(**{f.name: saved[f.name] for f in fields(config_class) if f.name in saved})
    return cfg, module, state


def rebuild_algo(module: Any, cfg: WorkerConfig, eval_env, algo_state: dict, device: torch.device) -> Any:
    """The worker's algorithm holding a checkpoint's weights, built for the (wrapped) eval env's sizes;
    a worker whose sizes also come from its data (DT's timestep table) builds through its own
    `algo_for_checkpoint(cfg, state_dim, action_dim, max_action, algo_state, device)`."""
    build = getattr(module, "algo_for_checkpoint", None)
    if build is not None:
        algo = build(cfg, *env_dims(eval_env), algo_state, device)
    else:
        algo = module.build_algo(cfg, *env_dims(eval_env), device)
    algo.load_state_dict(algo_state)
    return algo


def evaluate_run(run_dir: str | Path, episodes: int = 0, seed: int = -1, device: str = "auto") -> dict[str, Any]:
    """Evaluate a worker run's checkpoint (see the module's docstring); returns the result (not written)."""
    torch_device = resolve_device(device)
    cfg, module, state = load_worker(Path(run_dir), torch_device)
    return evaluate_loaded(Path(run_dir), cfg, module, state, episodes or cfg.final_eval_episodes,
                           cfg.seed if seed < 0 else seed, torch_device)


@dataclass
class RebuiltEvaluation:
    """A worker run's evaluation as the run had it: its intent source (None: no intents), its wrapped
    vector env (the run's number of envs at once) and its algorithm with the checkpoint's weights
    behind the checkpoint's state normalisation."""
    intents: Any
    envs: Any
    algo: Any
    policy: NormalizedPolicy


def rebuild_evaluation(run_dir: Path, cfg: WorkerConfig, module: Any, state: dict,
                       device: torch.device) -> RebuiltEvaluation:
    """Rebuild a run's evaluation from its checkpoint (close `.envs` when done). Its Manager is the
    run's --manager, else the default one of the runs folder that holds the run (not one relative
    to the current folder)."""
    task = get_task(cfg.env)
    manager = manager_path(cfg, runs_dir=run_dir.parents[3])  # (runs_dir/<env>/<algo>/<intent>/seed<k>)
    intents = make_intent_source(cfg.intent, manager if cfg.intent == "manager" else None, cfg.env,
                                 task.obs_dim, intent_dim=cfg.intent_dim, device=device, seed=cfg.seed)
    envs = wrap_env(make_vector_env(cfg.env, eval_env_count(cfg)), intents)  # as WorkerRun + its marked line
    obs_size = envs.single_observation_space.shape[0]
    if obs_size != state["obs_dim"]:
        envs.close()
        raise InputError(f"{run_dir}'s checkpoint has observations of size {state['obs_dim']}, its intents now "
                         f"give {obs_size}: was its Manager replaced?")
    algo = rebuild_algo(module, cfg, envs, state["algo"], device)
    return RebuiltEvaluation(intents, envs, algo, NormalizedPolicy(algo, state["obs_mean"], state["obs_std"], device))


def evaluate_loaded(run_dir: Path, cfg: WorkerConfig, module: Any, state: dict, episodes: int, seed: int,
                    torch_device: torch.device) -> dict[str, Any]:
    run = rebuild_evaluation(run_dir, cfg, module, state, torch_device)
    intents, algo = run.intents, run.algo
    try:
        start = time.perf_counter()
        per_target = scores_at_targets(cfg.env, intents, algo, run.policy, run.envs, episodes, seed)
    finally:
        run.envs.close()
    scores = per_target[0]  # (episodes,)
    result: dict[str, Any] = {
        "run_dir": str(run_dir), "env": cfg.env, "algo": cfg.algo, "intent": cfg.intent, "seed": cfg.seed,
        "checkpoint_step": int(state["step"]), "steps": cfg.steps, "eval_seed": seed, "episodes": episodes,
        "normalized_score": float(scores.mean()), "normalized_score_std": float(scores.std()),
        "device": str(torch_device), "machine": device_description(torch_device),
        "eval_wall_s": time.perf_counter() - start, "code_version": code_version()}
    targets = eval_targets(algo)
    if targets:
        result["normalized_score_per_target"] = {f"{t:g}": float(s.mean()) for t, s in zip(targets, per_target)}
    final = compare_with_final(result, run_dir, seed == cfg.seed and episodes == cfg.final_eval_episodes)
    if cfg.intent == "manager":
        result["manager_source"] = intents.manager.source
        scored_with = final.get("manager_source") or {}  # (runs before this field: unknown)
        if scored_with.get("sha256") not in (None, intents.manager.source["sha256"]):
            result["manager_changed"] = (f"the run was scored with {scored_with['file']} "
                                         f"sha256 {scored_with['sha256'][:12]}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(EvaluateConfig, "python -m corl evaluate", __doc__, list(argv or []))

    def load(run_dir: Path, cfg: EvaluateConfig):
        device = resolve_device(cfg.device)
        worker_cfg, module, state = load_worker(run_dir, device)
        episodes = cfg.episodes or worker_cfg.final_eval_episodes
        seed = worker_cfg.seed if cfg.seed < 0 else cfg.seed
        return (result_path(run_dir, episodes, seed), int(state["step"]),
                lambda: evaluate_loaded(run_dir, worker_cfg, module, state, episodes, seed, device))

    return run_evaluation(cfg, load, manager_warnings)


def manager_warnings(result: dict[str, Any]) -> list[str]:
    if "manager_changed" not in result:
        return []
    source = result["manager_source"]
    return [f"the Manager giving the intents has changed since the run: {result['manager_changed']}, this "
            f"evaluation used {source['file']} sha256 {source['sha256'][:12]}"]
