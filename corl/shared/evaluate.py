"""Score a trained worker again: `python -m corl evaluate RUN_DIR [--episodes N] [--seed S]`.

Loads the run folder's checkpoint.pt (its weights, normalisation stats, config and step: a finished
run, or one still training or stopped, at its last checkpoint), rebuilds the worker's algorithm
and evaluation env exactly as the run did (same intents: the Manager of the run, or random ones;
the same number of envs at once) and evaluates it. With the run's own seed and
`final_eval_episodes` it replays the run's final evaluation, the same numbers as final.json
(checked and said); other seeds or more episodes give a fresh estimate. The result goes to
`<run>/evaluations/episodes<N>_seed<S>.json` (atomic; an existing one is reported, not redone,
unless --overwrite) and is printed as key=value lines.
"""
from __future__ import annotations

import importlib
import json
import sys
import time
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from common.atomic import write_json_atomic
from common.checkpoint import load_checkpoint
from common.cli import check_minimums, parse_config
from common.cli import config_field as field
from common.device import resolve_device
from common.errors import INPUT_ERRORS, InputError, report_input_error
from common.machine import device_description
from corl.shared.config import WorkerConfig
from corl.shared.run import NormalizedPolicy, env_dims, eval_env_count, eval_targets, scores_at_targets
from tasks import get_task, make_vector_env
from tasks.datasets import code_version
from wrappers import make_intent_source, wrap_env


@dataclass
class EvaluateConfig:
    run_dir: str = field(None, "a worker's run folder, runs/<env>/<algo>/<intent>/seed<k> (its checkpoint.pt)",
                         positional=True)
    episodes: int = field(0, "evaluation episodes (0: the run's final_eval_episodes, as final.json's score)")
    seed: int = field(-1, "evaluation seed: episode e starts from reset seed (seed, e) (-1: the run's seed, as "
                          "final.json's score)")
    device: str = field("auto", "auto | cpu | cuda")
    overwrite: bool = field(False, "redo an evaluation whose result file exists instead of reporting it")


EVALUATE_MINIMUMS = {"episodes": 0, "seed": -1}


def load_worker(run_dir: Path, device: torch.device) -> tuple[WorkerConfig, Any, dict]:
    """(config, worker module, checkpoint state) of a run folder, the config rebuilt from the
    checkpoint's copy with the worker file's own config class."""
    from corl.__main__ import WORKERS  # (the registry of worker files; imported late: it imports nothing else)

    path = run_dir / "checkpoint.pt"
    if not path.is_file():
        raise InputError(f"{run_dir} holds no checkpoint.pt: give a worker's run folder, "
                         "runs/<env>/<algo>/<intent>/seed<k>, whose training has written one")
    state = load_checkpoint(path, device)
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


def result_path(run_dir: Path, episodes: int, seed: int) -> Path:
    return run_dir / "evaluations" / f"episodes{episodes}_seed{seed}.json"


def evaluate_run(run_dir: str | Path, episodes: int = 0, seed: int = -1, device: str = "auto") -> dict[str, Any]:
    """Evaluate a worker run's checkpoint (see the module's docstring); returns the result (not written)."""
    torch_device = resolve_device(device)
    cfg, module, state = load_worker(Path(run_dir), torch_device)
    return evaluate_loaded(Path(run_dir), cfg, module, state, episodes or cfg.final_eval_episodes,
                           cfg.seed if seed < 0 else seed, torch_device)


def evaluate_loaded(run_dir: Path, cfg: WorkerConfig, module: Any, state: dict, episodes: int, seed: int,
                    torch_device: torch.device) -> dict[str, Any]:
    task = get_task(cfg.env)
    # the run's Manager: its --manager, else the default one of the runs folder that holds this run
    manager = cfg.manager or run_dir.parents[3] / cfg.env / "manager" / f"seed{cfg.seed}" / "manager.pt"
    intents = make_intent_source(cfg.intent, manager if cfg.intent == "manager" else None, cfg.env,
                                 task.obs_dim, intent_dim=cfg.intent_dim, device=torch_device, seed=cfg.seed)
    envs = wrap_env(make_vector_env(cfg.env, eval_env_count(cfg)), intents)  # as WorkerRun + its marked line
    try:
        if envs.single_observation_space.shape[0] != state["obs_dim"]:
            raise InputError(f"{run_dir}'s checkpoint has observations of size {state['obs_dim']}, its intents now "
                             f"give {envs.single_observation_space.shape[0]}: was its Manager replaced?")
        algo = rebuild_algo(module, cfg, envs, state["algo"], torch_device)
        policy = NormalizedPolicy(algo, state["obs_mean"].numpy(), state["obs_std"].numpy(), torch_device)
        start = time.perf_counter()
        per_target = scores_at_targets(cfg.env, intents, algo, policy, envs, episodes, seed)
    finally:
        envs.close()
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
    final_path = run_dir / "final.json"
    final = json.loads(final_path.read_text()) if final_path.is_file() else {}
    if final and seed == cfg.seed and episodes == cfg.final_eval_episodes:
        result["final_json_score"] = final["normalized_score"]
        result["replays_final_json"] = bool(np.isclose(final["normalized_score"], result["normalized_score"],
                                                       rtol=0, atol=1e-9))
    if cfg.intent == "manager":
        result["manager_source"] = intents.manager.source
        scored_with = final.get("manager_source") or {}  # (runs before this field: unknown)
        if scored_with.get("sha256") not in (None, intents.manager.source["sha256"]):
            result["manager_changed"] = f"the run was scored with {scored_with['file']} sha256 {scored_with['sha256'][:12]}"
    return result


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_config(EvaluateConfig, "python -m corl evaluate", __doc__, list(argv or []))
    try:
        check_minimums(cfg, EVALUATE_MINIMUMS)
        run_dir, device = Path(cfg.run_dir), resolve_device(cfg.device)
        worker_cfg, module, state = load_worker(run_dir, device)
        episodes = cfg.episodes or worker_cfg.final_eval_episodes
        seed = worker_cfg.seed if cfg.seed < 0 else cfg.seed
        out = result_path(run_dir, episodes, seed)
        if out.is_file() and not cfg.overwrite:
            done = json.loads(out.read_text())
            if done.get("checkpoint_step") == int(state["step"]):
                print(f"{out} exists for this checkpoint (step {done['checkpoint_step']}); reporting it "
                      "(pass --overwrite to evaluate again)", file=sys.stderr)
                return print_result(done)
            print(f"{out} was made at checkpoint step {done.get('checkpoint_step')}, the run has moved on to step "
                  f"{int(state['step'])}: evaluating again", file=sys.stderr)
        result = evaluate_loaded(run_dir, worker_cfg, module, state, episodes, seed, device)
        result["config"] = asdict(cfg)
        write_json_atomic(out, result)
    except INPUT_ERRORS as exc:
        return report_input_error(exc)
    if "manager_changed" in result:
        print(f"warning: the Manager giving the intents has changed since the run: {result['manager_changed']}, "
              f"this evaluation used {result['manager_source']['file']} sha256 "
              f"{result['manager_source']['sha256'][:12]}", file=sys.stderr)
    elif result.get("replays_final_json") is False:
        print(f"warning: final.json says {result['final_json_score']}; this evaluation of the same checkpoint, "
              "seed and episodes gives another number (another device or torch version?)", file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return print_result(result)


def print_result(result: dict[str, Any]) -> int:
    for key, value in result.items():
        if key != "config":
            print(f"{key}={value}")
    return 0
