"""One worker run: folder, intents source, evaluation, logging, checkpoints, resume, final score.

A transition worker (all but DT) hands `WorkerRun.fit` its augmented dataset, its wrapped eval env
and its `build_algo`; fit normalises the states, builds the algorithm and the device replay buffer
and calls `WorkerRun.train`; DT builds its own sequence buffer and calls `train` itself. The
algorithm is an object with `update(batch) -> dict[str, Tensor]`, `state_dict()`,
`load_state_dict()` and `act(obs) -> actions` (normalised observations in, actions out, on the
device). Optional hooks: `reset(episode_ids)` at each evaluation round, `observe(rewards)` after
each env step, and `eval_targets` (a list) with `set_eval_target(target)` for algorithms evaluated
at several conditioning targets (DT's target returns): each target is evaluated, metrics.csv gets
one `eval_normalized_score_<target>` column per target, `eval_normalized_score` / final.json's
`normalized_score` are the FIRST target's, and final.json adds `normalized_score_per_target`. With
--compile the run calls `compile(**torch_compile_kwargs)` (corl/shared/compiled.py's CompiledLosses)
before the first update. Everything else lives here:
  runs/<env>/<algo>/<intent>/seed<k>/ with config.yaml, metrics.csv (train losses every log_every
  steps, eval normalised score every eval_every, training steps/s with evaluation time left out),
  checkpoint.pt (atomic; weights, optimisers, sampler generator, step, normalisation stats, obs size,
  intent) and final.json last.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from common.checkpoint import (RESTART_FIX, CheckpointError, check_resumed_settings, check_same_statistics,
                               load_checkpoint, save_atomic)
from common.cli import compile_kwargs
from common.device import resolve_device, resolve_profile
from common.interrupt import StopOnSignal, next_log_row
from common.machine import device_description
from common.metrics import MetricWindow
from common.normalization import normalized_tensor
from common.progress import progress_bar
from common.run_dir import RunAlreadyComplete, RunDir
from common.wandb_log import WandbMirror, closing
from corl.shared.config import WorkerConfig, resolve_run_size, validate_worker_config
from corl.shared.data import ReplayBuffer, normalize_dataset
from tasks import evaluate_policy, get_normalized_score, get_task, make_vector_env
from tasks.datasets import code_version
from wrappers import make_intent_source


class Algorithm(Protocol):
    def update(self, batch: list[Tensor]) -> dict[str, Tensor]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    def act(self, obs: Tensor) -> Tensor: ...


class AlgorithmBuilder(Protocol):
    """A worker file's `build_algo(cfg, state_dim, action_dim, max_action, device)`."""
    def __call__(self, cfg: Any, state_dim: int, action_dim: int, max_action: float,
                 device: torch.device) -> Algorithm: ...


class NormalizedPolicy:
    """Batch policy for tasks.evaluate_policy: raw (intent-augmented) obs -> normalised -> actions."""

    def __init__(self, algo: Algorithm, obs_mean: np.ndarray, obs_std: np.ndarray, device: torch.device):
        self.algo = algo
        self.mean = torch.as_tensor(obs_mean, device=device)
        self.std = torch.as_tensor(obs_std, device=device)

    def reset(self, episode_ids: np.ndarray) -> None:
        if hasattr(self.algo, "reset"):
            self.algo.reset(episode_ids)

    def observe(self, rewards: np.ndarray) -> None:
        """The env's (num_envs,) rewards after a step, for algorithms that track them (DT)."""
        if hasattr(self.algo, "observe"):
            self.algo.observe(rewards)

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.algo.act(normalized_tensor(obs, self.mean, self.std)).cpu().numpy()


def env_dims(eval_env) -> tuple[int, int, float]:
    """(state_dim, action_dim, max_action) of a (wrapped) eval vector env: read after the PLUGIN
    wrap, so state_dim includes the intent."""
    state_dim = eval_env.single_observation_space.shape[0]
    action_dim = eval_env.single_action_space.shape[0]
    return state_dim, action_dim, float(eval_env.single_action_space.high[0])


def eval_targets(algo: Algorithm) -> list[float]:
    """The conditioning targets an algorithm is evaluated at (`algo.eval_targets`), or [] if none."""
    return [float(t) for t in (getattr(algo, "eval_targets", None) or [])]


def target_column(target: float) -> str:
    """metrics.csv column of one evaluation target, e.g. eval_normalized_score_280."""
    return f"eval_normalized_score_{target:g}"


def manager_path(cfg: WorkerConfig, runs_dir: str | Path | None = None) -> str:
    """The Manager checkpoint a worker reads: `cfg.manager`, else <runs_dir>/<env>/manager/seed<k>/manager.pt
    (`runs_dir`: the run's own `cfg.runs_dir` unless given, e.g. the folder that holds a run being re-scored)."""
    root = Path(cfg.runs_dir if runs_dir is None else runs_dir)
    return cfg.manager or str(root / cfg.env / "manager" / f"seed{cfg.seed}" / "manager.pt")


def eval_env_count(cfg: WorkerConfig) -> int:
    """How many envs a worker's evaluation vector env runs at once (its episodes go in rounds of it)."""
    return min(cfg.eval_num_envs, max(cfg.eval_episodes, cfg.final_eval_episodes))


def evaluation_returns(env: str, intents, policy, eval_env, episodes: int, seed: int) -> np.ndarray:
    """(episodes,) returns of one worker evaluation, episodes seeded from `seed`; the intent source
    (if any) restarts its randomness from `seed` first, so every evaluation sees the same draws."""
    if hasattr(intents, "reseed"):
        intents.reseed(seed)
    return evaluate_policy(env, policy, episodes, seed=seed, envs=eval_env)


def scores_at_targets(env: str, intents, algo: Algorithm, policy: NormalizedPolicy, eval_env, episodes: int,
                      seed: int) -> list[np.ndarray]:
    """(episodes,) normalised scores at each of the algorithm's eval targets (the first is the main
    one); a single evaluation for algorithms without targets. A function of the weights and `seed`."""
    targets = eval_targets(algo)
    scores = []
    for target in targets or [None]:
        if target is not None:
            algo.set_eval_target(target)  # type: ignore[attr-defined]
        scores.append(get_normalized_score(env, evaluation_returns(env, intents, policy, eval_env, episodes, seed)))
    return scores


# the settings a run may resume with changed: they move files, chunks, logs or the device, not the numbers
RESUME_FREE = ("runs_dir", "data_dir", "chunk_steps", "overwrite", "progress", "wandb", "device", "compile",
               "compile_mode", "compile_manager")


class WorkerRun:
    def __init__(self, cfg: WorkerConfig):
        device = resolve_device(cfg.device)
        validate_worker_config(cfg)
        profile = resolve_profile(cfg.profile, device)
        self.cfg = resolve_run_size(cfg, profile)
        self.device = device
        self.task = get_task(cfg.env)
        self.run_dir = RunDir(cfg.runs_dir, cfg.env, [cfg.algo, cfg.intent], cfg.seed)
        self.checkpoint_path = self.run_dir.path / "checkpoint.pt"
        self.claim = self.run_dir.claim()  # this process alone trains here, until train() returns
        try:
            if self.run_dir.is_complete() and not cfg.overwrite:
                raise RunAlreadyComplete(f"{self.run_dir.path} already holds a finished run; "
                                         "pass --overwrite to redo it")
            self.intents = make_intent_source(cfg.intent, manager_path(cfg) if cfg.intent == "manager" else None,
                                              cfg.env, self.task.obs_dim, intent_dim=cfg.intent_dim, device=device,
                                              seed=cfg.seed, compile_planner=cfg.compile_manager)
        except BaseException:
            self.claim.release()
            raise
        self.mirrors: list[WandbMirror] = []  # the W&B run of a train() call, with --wandb
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)

    def make_eval_env(self):
        """The evaluation vector env (autoreset off), to be wrapped by the worker's marked line."""
        return make_vector_env(self.cfg.env, eval_env_count(self.cfg))

    # --- evaluation ----------------------------------------------------------------------------
    def evaluate_targets(self, algo: Algorithm, policy: NormalizedPolicy, eval_env, episodes: int) -> list[np.ndarray]:
        return scores_at_targets(self.cfg.env, self.intents, algo, policy, eval_env, episodes, self.cfg.seed)

    # --- checkpoints ----------------------------------------------------------------------------
    def _checkpoint(self, algo: Algorithm, buffer: ReplayBuffer, step: int, obs_mean, obs_std, obs_dim) -> dict:
        return {"algo": algo.state_dict(), "buffer": buffer.state_dict(), "step": step,
                "obs_mean": torch.as_tensor(obs_mean), "obs_std": torch.as_tensor(obs_std),
                "obs_dim": int(obs_dim), "env": self.cfg.env, "intent": self.cfg.intent,
                "config": dataclasses.asdict(self.cfg), "rng": self._rng_state()}

    def _rng_state(self) -> dict[str, Tensor]:
        """Global torch RNG states (dropout, sampling without an explicit generator), so a resumed
        run draws the same numbers as an uninterrupted one."""
        state = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _set_rng_state(self, state: dict[str, Tensor]) -> None:
        torch.set_rng_state(state["cpu"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def _resume(self, algo: Algorithm, buffer: ReplayBuffer, obs_dim: int, obs_mean: np.ndarray,
                obs_std: np.ndarray) -> int:
        state = load_checkpoint(self.checkpoint_path, self.device, fix=RESTART_FIX)
        if state["env"] != self.cfg.env or state["obs_dim"] != obs_dim:
            raise CheckpointError(
                f"{self.checkpoint_path} is a {state['env']} worker with observations of size {state['obs_dim']}, "
                f"this run is {self.cfg.env} with size {obs_dim} (intent={self.cfg.intent}); "
                "use another --runs-dir or pass --overwrite")
        check_resumed_settings(self.checkpoint_path, state["config"], dataclasses.asdict(self.cfg), RESUME_FREE)
        check_same_statistics(self.checkpoint_path, (state["obs_mean"], state["obs_std"]), (obs_mean, obs_std),
                              f"this {self.cfg.env} dataset with these intents (a replaced dataset or Manager?)")
        algo.load_state_dict(state["algo"])
        buffer.load_state_dict(state["buffer"])
        self._set_rng_state(state["rng"])
        return int(state["step"])

    def fit(self, dataset: dict[str, np.ndarray], eval_env, build_algo: AlgorithmBuilder) -> dict[str, Any] | None:
        """Train a transition worker (all but DT) on its dataset, after its two PLUGIN lines: normalise
        the states (`cfg.normalize`; the stats go into every checkpoint), build the algorithm for the
        wrapped eval env's sizes, put the data on the device, train with `cfg.batch_size`."""
        dataset, obs_mean, obs_std = normalize_dataset(dataset, self.cfg.normalize)
        algo = build_algo(self.cfg, *env_dims(eval_env), self.device)
        buffer = ReplayBuffer(dataset, self.device, seed=self.cfg.seed)
        return self.train(algo, buffer, eval_env, obs_mean, obs_std, self.cfg.batch_size)

    # --- the loop -----------------------------------------------------------------------------
    def train(self, algo: Algorithm, buffer: ReplayBuffer, eval_env, obs_mean: np.ndarray, obs_std: np.ndarray,
              batch_size: int) -> dict[str, Any] | None:
        """Train (or resume) to `cfg.steps`, or to this call's chunk; returns final.json's contents, or
        None when the call stopped early. Releases the run folder's claim when it returns."""
        with self.claim, closing(self.mirrors):
            return self._train(algo, buffer, eval_env, obs_mean, obs_std, batch_size)

    def _train(self, algo: Algorithm, buffer: ReplayBuffer, eval_env, obs_mean: np.ndarray, obs_std: np.ndarray,
               batch_size: int) -> dict[str, Any] | None:
        cfg = self.cfg
        obs_dim = eval_env.single_observation_space.shape[0]
        if cfg.compile:  # the loss computations (corl/shared/compiled.py); checkpoints are unchanged
            if not callable(getattr(algo, "compile", None)):
                raise ValueError(f"--compile true: {type(algo).__name__} cannot be compiled; derive it from "
                                 "corl.shared.compiled.CompiledLosses and name its loss methods in LOSS_METHODS "
                                 "(docs/workers.md, 'Adding your own algorithm'), or leave --compile false")
            algo.compile(**compile_kwargs(cfg.compile, cfg.compile_mode, flag="--compile_mode"))
        if buffer.observations.shape[1] != obs_dim:
            raise ValueError(f"dataset observations have size {buffer.observations.shape[1]}, the eval env "
                             f"gives {obs_dim}: the dataset and the env were not given the same intents")
        step = 0
        commit = code_version()  # read (and cached) now, resumed or not: final.json names the code this process loaded
        if self.checkpoint_path.exists() and not cfg.overwrite:
            step = self._resume(algo, buffer, obs_dim, obs_mean, obs_std)
            self.run_dir.truncate_metrics(step)
        else:
            self.run_dir.start({**dataclasses.asdict(cfg), "device": str(self.device), "obs_dim": obs_dim,
                                "code_version": commit}, overwrite=cfg.overwrite)
            self.run_dir.metrics_path.unlink(missing_ok=True)
        logger = None
        if cfg.wandb:  # a view of metrics.csv; one W&B run per run folder, continued when resumed
            logger = WandbMirror(self.run_dir.path, "iql-td-mpc-workers", group=f"{cfg.algo}-{cfg.env}-{cfg.intent}",
                                 name=f"{cfg.algo}-{cfg.env}-{cfg.intent}-seed{cfg.seed}",
                                 config=dataclasses.asdict(cfg), fresh=step == 0)
            self.mirrors.append(logger)
        policy = NormalizedPolicy(algo, obs_mean, obs_std, self.device)
        targets = eval_targets(algo)
        stop = min(cfg.steps, step + cfg.chunk_steps) if cfg.chunk_steps else cfg.steps
        window = MetricWindow(self.device, step)
        window_start = time.perf_counter()
        final_scores: list[np.ndarray] | None = None  # the last step's evaluation is the final one
        with progress_bar(total=cfg.steps, desc=f"{cfg.algo} {cfg.env} intent={cfg.intent}",
                          enabled=cfg.progress) as bar, StopOnSignal() as signal_stop:
            bar.update(step)
            while step < stop:
                if signal_stop.requested:  # Ctrl-C / SIGTERM: end this call at the next log row, checkpointed
                    stop = min(stop, next_log_row(step, cfg.log_every))
                window.add(algo.update(buffer.sample(batch_size)))
                step += 1
                evaluate_now = step % cfg.eval_every == 0 or step == cfg.steps
                if step % cfg.log_every == 0 or evaluate_now or step == stop:
                    window.check(self.checkpoint_path, "Lower the learning rate or check the dataset.")
                    n = window.count
                    train_s = time.perf_counter() - window_start  # after check()'s sync; evaluation not counted
                    row = {"step": step, **window.means(), "eval_normalized_score": ""}
                    row.update({target_column(t): "" for t in targets})
                    if evaluate_now:  # at the last step: once, with the final number of episodes
                        episodes = cfg.final_eval_episodes if step == cfg.steps else cfg.eval_episodes
                        scores = self.evaluate_targets(algo, policy, eval_env, episodes)
                        if step == cfg.steps:
                            final_scores = scores
                        row["eval_normalized_score"] = float(scores[0].mean())
                        row.update({target_column(t): float(s.mean()) for t, s in zip(targets, scores)})
                    row["steps_per_s"] = n / max(train_s, 1e-9)
                    self.run_dir.log_metrics(row)
                    if logger:
                        logger.log(row, step)
                    bar.update(n)
                    bar.set_postfix(score=row["eval_normalized_score"] or "-")
                    window_start = time.perf_counter()
                if step % cfg.checkpoint_every == 0 or step == stop:
                    save_atomic(self._checkpoint(algo, buffer, step, obs_mean, obs_std, obs_dim), self.checkpoint_path)
        if step < cfg.steps:
            if signal_stop.requested:
                raise signal_stop.interrupted(self.checkpoint_path, step, cfg.steps)
            print(f"stopped at step {step}/{cfg.steps}; run the same command again to resume")
            return None
        if final_scores is None:  # resumed from the last step's checkpoint: evaluate now (the same numbers)
            final_scores = self.evaluate_targets(algo, policy, eval_env, cfg.final_eval_episodes)
        per_target = final_scores
        scores = per_target[0]
        result = {"env": cfg.env, "algo": cfg.algo, "intent": cfg.intent, "seed": cfg.seed, "steps": step,
                  "profile": cfg.profile, "device": str(self.device), "machine": device_description(self.device),
                  "eval_episodes": cfg.final_eval_episodes,
                  "normalized_score": float(scores.mean()), "normalized_score_std": float(scores.std())}
        if targets:
            result["normalized_score_per_target"] = {f"{t:g}": float(s.mean()) for t, s in zip(targets, per_target)}
        if cfg.intent == "manager":  # the exact Manager whose intents the score was made with
            result["manager_source"] = self.intents.manager.source
        result["code_version"] = code_version()
        self.run_dir.finish(result)
        if logger:
            logger.result = result
        return result
