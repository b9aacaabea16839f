"""Training runs of every mode, resumable, in the run layout runs/<env>/<mode>/seed<k>/.

- checkpoint.pt (atomic) every `checkpoint_every` steps holds the agent (weights, target,
  optimisers, generator), the sampler's generator, the decoder and the step: a resumed run
  continues bit-for-bit as an uninterrupted one would (same device), and metrics.csv is cut back
  to the checkpoint's step;
- `chunk_steps` / `time_limit_s` stop a call early at a checkpoint, so long runs can span
  several calls (e.g. 10-minute GPU sessions);
- non-finite or exploding losses stop the run naming the loss and the step; the last good
  checkpoint stays (a bad state is never saved);
- at the end: the Manager exports manager.pt; flat agents are scored by batched MPC.

Several seeds in one process (`--seeds`): manager/stacked_training.py.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.checkpoint import (RESTART_FIX, check_resumed_settings, check_same_statistics, load_checkpoint,
                               save_atomic)
from common.cli import COMPILE_MODES, check_minimums, compile_kwargs
from common.cli import config_field as field
from common.device import DEVICE_HELP, resolve_device, resolve_profile
from common.interrupt import StopOnSignal, next_log_row
from common.machine import device_description
from common.metrics import MetricWindow, TrainingDiverged  # noqa: F401 (re-exported)
from common.progress import progress_bar
from common.run_dir import RunAlreadyComplete, RunDir
from common.wandb_log import WandbMirror, closing
from manager.agent import Agent
from manager.checkpoint import config_to_dict, export_manager
from manager.config import (PROFILE_EVAL_EPISODES, PROFILE_STEPS, AgentConfig, apply_profile, make_config,
                            resolve_for_env, validate)
from manager.data import SequenceBatch, SequenceSampler
from manager.inference import LatentPlanner
from manager.world_model import Decoder
from tasks import evaluate_policy, get_normalized_score, get_task, load_dataset
from tasks.datasets import code_version

@dataclass
class TrainConfig:
    mode: str = field("manager", "manager | iql_td_mpc | td_mpc", choices=("manager", "iql_td_mpc", "td_mpc"))
    env: str = field("maze2d-umaze-v1", "D4RL task name")
    seed: int = field(0, "seed of initialisation, sampling and evaluation")
    seeds: str = field("", "train several seeds in one process instead of --seed, e.g. 0,1,2 or 0-4: their parameters "
                           "stacked on a leading seed axis, one vmapped update for all (manager/stacked.py); "
                           "each seed gets its own run folder and the numbers of training it alone (up to "
                           "float rounding)")
    profile: str = field("auto", "paper | quick | smoke | auto (paper on a GPU, quick on a CPU); see docs/manager.md",
                         choices=("auto", "paper", "quick", "smoke"))
    steps: int | None = field(None, "training steps (default: the profile's: manager 300K, flat 1M for paper)")
    device: str = field("auto", DEVICE_HELP)
    runs_dir: str = field("runs", "root of the run folders")
    data_dir: str | None = field(None, "folder searched first for the dataset")
    eval_episodes: int | None = field(None, "flat agents: MPC evaluation episodes (default: the profile's, 100 for paper)")
    eval_num_envs: int = field(100, "flat agents: episodes evaluated at once (batched planning)")
    log_every: int = field(100, "write a metrics.csv row every this many steps")
    checkpoint_every: int = field(1000, "save checkpoint.pt every this many steps (a multiple of log_every)")
    snapshot_every: int = field(0, "manager: also export snapshots/manager_step<N>.pt every this many steps (a "
                                   "multiple of checkpoint_every; 0: none), Managers of several training lengths "
                                   "from one run")
    chunk_steps: int = field(0, "stop after this many steps in this call (0: run to the end); re-run to resume")
    time_limit_s: float = field(0.0, "stop at the first checkpoint after this many seconds (0: no limit)")
    compile: bool = field(False, "torch.compile the update's loss computation (one graph, backward included) "
                                 "and the flat agents' planner: faster steps after a one-off compile (minutes "
                                 "on a CPU); see docs/manager.md")
    compile_mode: str = field("default", "torch.compile's mode with --compile: default | reduce-overhead (CUDA "
                                         "graphs on a GPU: 3.8x the eager paper-size Manager update on an H200, "
                                         "11.8x for 5 stacked seeds; docs/manager.md) | max-autotune | "
                                         "max-autotune-no-cudagraphs", choices=COMPILE_MODES)
    decoder: bool = field(True, "manager: also train the latent -> observation decoder (reconstruction only)")
    overwrite: bool = field(False, "redo a finished run")
    progress: bool = field(True, "show a progress bar")
    wandb: bool = field(False, "also log metrics.csv's rows to Weights & Biases (offline mode unless WANDB_MODE "
                               "says otherwise; a resumed run continues its W&B run; common/wandb_log.py)")


# the least value of each count and limit (0: none / run to the end / no limit)
TRAIN_MINIMUMS = {"steps": 1, "eval_episodes": 1, "eval_num_envs": 1, "log_every": 1, "checkpoint_every": 1,
                  "snapshot_every": 0, "chunk_steps": 0, "time_limit_s": 0}

# the settings a run may resume with changed: they move files, chunks, logs or the device, not the
# numbers (--seeds: a seed trained stacked or alone gets the same numbers up to float rounding)
RESUME_FREE = ("seeds", "runs_dir", "data_dir", "chunk_steps", "time_limit_s", "overwrite", "progress", "wandb",
               "device", "compile", "compile_mode")


@dataclass
class ResolvedRun:
    train: TrainConfig
    agent: AgentConfig
    profile: str
    steps: int
    eval_episodes: int
    device: torch.device


def resolve(train: TrainConfig, overrides: dict[str, Any] | None = None) -> ResolvedRun:
    """Profile, task-dependent settings and user overrides -> the exact configs of a run."""
    overrides = dict(overrides or {})
    get_task(train.env)  # unknown names fail here, listing the known ones
    device = resolve_device(train.device)
    profile = resolve_profile(train.profile, device)
    explicit = frozenset(overrides)
    cfg = make_config(train.mode, **overrides)
    cfg = resolve_for_env(apply_profile(cfg, profile, explicit), train.env, explicit)
    validate(cfg)  # a bad --set fails here, before any data is read
    manager_steps, flat_steps = PROFILE_STEPS[profile]
    steps = train.steps if train.steps is not None else (manager_steps if train.mode == "manager" else flat_steps)
    compile_options(train)  # a --compile-mode without --compile fails here, before any data is read
    check_minimums(train, TRAIN_MINIMUMS)
    if train.checkpoint_every % train.log_every:
        raise ValueError("checkpoint_every must be a multiple of log_every (so a resumed run logs identically)")
    if train.snapshot_every and (train.mode != "manager" or train.snapshot_every % train.checkpoint_every):
        raise ValueError("snapshot_every needs --mode manager and a multiple of checkpoint_every (snapshots are "
                         f"exported with checkpoints), got {train.snapshot_every} with {train.checkpoint_every}")
    episodes = train.eval_episodes if train.eval_episodes is not None else PROFILE_EVAL_EPISODES[profile]
    return ResolvedRun(train, cfg, profile, steps, episodes, device)


def compile_options(train: TrainConfig) -> dict[str, str]:
    """torch.compile's keyword arguments of a run (common.cli.compile_kwargs)."""
    return compile_kwargs(train.compile, train.compile_mode)


class Trainer:
    def __init__(self, run: ResolvedRun, dataset: dict[str, np.ndarray] | None = None):
        """`dataset`: the env's arrays when the caller has loaded them already (stacked seeds share one read)."""
        self.run = run
        t = run.train
        self.run_dir = RunDir(t.runs_dir, t.env, t.mode, t.seed)
        self.checkpoint_path = self.run_dir.path / "checkpoint.pt"
        self.signal_stop = StopOnSignal()  # entered by train() / stacked_training.train_stacked(); until then never set
        self.claim = self.run_dir.claim()  # this process alone trains here, until train() returns
        self.mirrors: list[WandbMirror] = []  # the W&B view of metrics.csv (--wandb, begin()); the caller closes it
        try:
            self._build(dataset if dataset is not None else load_dataset(t.env, t.data_dir, show_progress=t.progress))
        except BaseException:
            self.claim.release()
            raise

    def _build(self, dataset: dict[str, np.ndarray]) -> None:
        """The sampler, the agent and the decoder of the run, for its dataset."""
        run = self.run
        t, cfg = run.train, run.agent
        self.obs_dim, self.act_dim = dataset["observations"].shape[1], dataset["actions"].shape[1]
        self.sampler = SequenceSampler(dataset, cfg.horizon, cfg.k, cfg.reward_scale, device=run.device, seed=t.seed,
                                       max_episode_steps=get_task(t.env).max_episode_steps,
                                       prioritized=cfg.prioritized_replay, alpha=cfg.per_alpha, beta=cfg.per_beta)
        self.agent = Agent(self.obs_dim, self.act_dim, cfg, run.device, t.seed)
        if t.compile:
            self.agent.compile(**compile_options(t))
        self.decoder = self.decoder_optim = None
        if t.decoder and t.mode == "manager":
            self.decoder = Decoder(cfg.latent_dim, self.obs_dim, cfg.enc_dim).to(run.device)
            self.decoder_optim = torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr)

    # --- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"agent": self.agent.state_dict(), "sampler": self.sampler.state_dict(),
                "decoder": None if self.decoder is None else self.decoder.state_dict(),
                "decoder_optim": None if self.decoder_optim is None else self.decoder_optim.state_dict(),
                "config": config_to_dict(self.run.agent), "train": self.resumable_settings(),
                "env": self.run.train.env, "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                # what the agent's inputs were normalised with: the checkpoint alone can act (manager.evaluate)
                "obs_mean": torch.as_tensor(self.sampler.obs_mean), "obs_std": torch.as_tensor(self.sampler.obs_std)}

    def resumable_settings(self) -> dict[str, Any]:
        """The run's settings as resolved (steps, episodes and profile, not 'the profile's default')."""
        run = self.run
        return {**dataclasses.asdict(run.train), "steps": run.steps, "eval_episodes": run.eval_episodes,
                "profile": run.profile}

    def load_state_dict(self, state: dict) -> None:
        if state["env"] != self.run.train.env or state["obs_dim"] != self.obs_dim:
            raise ValueError(f"{self.checkpoint_path} belongs to another run ({state['env']}); use another --runs-dir")
        check_resumed_settings(self.checkpoint_path, state["config"], config_to_dict(self.run.agent))
        check_resumed_settings(self.checkpoint_path, state.get("train", {}), self.resumable_settings(), RESUME_FREE)
        if "obs_mean" in state:  # (checkpoints of code before they held the statistics: not checked)
            check_same_statistics(self.checkpoint_path, (state["obs_mean"], state["obs_std"]),
                                  (self.sampler.obs_mean, self.sampler.obs_std), f"this {self.run.train.env} dataset")
        self.agent.load_state_dict(state["agent"])
        self.sampler.load_state_dict(state["sampler"])
        if self.decoder is not None and state["decoder"] is not None:
            self.decoder.load_state_dict(state["decoder"])
            self.decoder_optim.load_state_dict(state["decoder_optim"])

    # --- the loop --------------------------------------------------------------------------------
    def decoder_update(self, z: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """One reconstruction step on the agent's (detached) latents z (B, d) of obs (B, obs_dim)."""
        loss = ((self.decoder(z) - obs) ** 2).mean()
        self.decoder_optim.zero_grad(set_to_none=True)
        loss.backward()
        self.decoder_optim.step()
        return loss.detach()

    def begin(self) -> None:
        """Resume from checkpoint.pt, or start the run folder afresh; sets the step this call stops at."""
        t = self.run.train
        if self.run_dir.is_complete() and not t.overwrite:
            raise RunAlreadyComplete(f"{self.run_dir.path} already holds a finished run; pass --overwrite to redo it")
        commit = code_version()  # read (and cached) now, resumed or not: final.json names the code this process loaded
        if self.checkpoint_path.exists() and not t.overwrite:
            self.load_state_dict(load_checkpoint(self.checkpoint_path, self.run.device, fix=RESTART_FIX))
            self.run_dir.truncate_metrics(self.agent.step)
        else:
            self.run_dir.start({"train": dataclasses.asdict(t), "agent": config_to_dict(self.run.agent),
                                "profile": self.run.profile, "steps": self.run.steps,
                                "device": str(self.run.device), "code_version": commit},
                               overwrite=t.overwrite)
            self.run_dir.metrics_path.unlink(missing_ok=True)
        if t.wandb:
            self.mirrors.append(WandbMirror(
                self.run_dir.path, "iql-td-mpc-manager", group=f"{t.mode}-{t.env}",
                name=f"{t.mode}-{t.env}-seed{t.seed}", fresh=self.agent.step == 0,
                config={"train": dataclasses.asdict(t), "agent": config_to_dict(self.run.agent)}))
        start_step, total = self.agent.step, self.run.steps
        self.stop_step = min(total, start_step + t.chunk_steps) if t.chunk_steps else total
        self.started = self.window_start = time.perf_counter()
        self.window = MetricWindow(self.run.device, start_step)

    def saves_at(self, step: int) -> bool:
        return step % self.run.train.checkpoint_every == 0 or step == self.stop_step

    def record(self, step: int, batch: SequenceBatch, metrics: dict[str, torch.Tensor],
               priorities: torch.Tensor | None, latents: torch.Tensor, bar) -> bool:
        """Everything after update `step` but the update: replay priorities, the decoder's step,
        metrics.csv, the checkpoint (the agent must hold the step's weights then). True: this call
        has reached its time limit and stops here."""
        t = self.run.train
        self.sampler.update_priorities(batch.index, priorities)
        if self.decoder is not None:
            metrics["decoder"] = self.decoder_update(latents, batch.obs[0])
        self.window.add(metrics)
        if step % t.log_every == 0 or step == self.stop_step:
            self.window.check(self.checkpoint_path, "Lower the learning rate (--set lr=...) or check the "
                              "dataset's rewards and observations.")
            now, n = time.perf_counter(), self.window.count
            row = {"step": step, **self.window.means(), "steps_per_s": n / max(now - self.window_start, 1e-9)}
            self.run_dir.log_metrics(row)
            for mirror in self.mirrors:
                mirror.log(row, step)
            self.window_start = now
            bar.update(n)
        if self.saves_at(step):
            if t.snapshot_every and step % t.snapshot_every == 0:  # before the checkpoint: a resume rewrites it
                self.export(self.snapshot_path(step))
            save_atomic(self.state_dict(), self.checkpoint_path)
            return bool(t.time_limit_s and time.perf_counter() - self.started > t.time_limit_s
                        and step < self.run.steps)
        return False

    def end(self) -> dict[str, Any] | None:
        """final.json's contents once every step is done; None (and how to go on) after a partial call."""
        if self.agent.step < self.run.steps:
            if not self.signal_stop.requested:  # (an interrupted call says so in its error)
                print(f"stopped at step {self.agent.step}/{self.run.steps}; checkpoint {self.checkpoint_path}: run "
                      "the same command again to resume")
            return None
        return self.finish(time.perf_counter() - self.started)

    def stop_at_next_log_row(self, step: int) -> int:
        """After SIGINT / SIGTERM at `step` (the updates done): this call ends at the next log row
        (common/interrupt.py); returns the new stop step."""
        self.stop_step = min(self.stop_step, next_log_row(step, self.run.train.log_every))
        return self.stop_step

    def advance(self, until: int, bar) -> bool:
        """Update this agent alone up to step `until`; True: stopped earlier by the time limit."""
        while self.agent.step < until:
            if self.signal_stop.requested:
                until = min(until, self.stop_at_next_log_row(self.agent.step))
            batch = self.sampler.sample(self.run.agent.batch_size)
            metrics = self.agent.update(batch)
            if self.record(self.agent.step, batch, metrics, self.agent.priorities, self.agent.latents, bar):
                return True
        return False

    def train(self) -> dict[str, Any] | None:
        """Run (or resume) training; returns final.json's contents, or None if stopped early.
        Releases the run folder's claim when it returns."""
        with self.claim, closing(self.mirrors):
            return self._train()

    def _train(self) -> dict[str, Any] | None:
        t = self.run.train
        self.begin()
        with StopOnSignal() as self.signal_stop, \
                progress_bar(total=self.run.steps, desc=f"{t.mode} {t.env}", enabled=t.progress) as bar:
            bar.update(self.agent.step)
            self.advance(self.stop_step, bar)
        result = self.end()
        if result is None and self.signal_stop.requested:
            raise self.signal_stop.interrupted(self.checkpoint_path, self.agent.step, self.run.steps)
        return result

    def snapshot_path(self, step: int) -> Path:
        return self.run_dir.path / "snapshots" / f"manager_step{step:07d}.pt"

    def export(self, path: Path) -> Path:
        """The Manager as it stands, with the sampler's normalisation stats (manager.checkpoint)."""
        t = self.run.train
        mean, std = torch.as_tensor(self.sampler.obs_mean), torch.as_tensor(self.sampler.obs_std)
        return export_manager(path, env=t.env, obs_dim=self.obs_dim, act_dim=self.act_dim, cfg=self.run.agent,
                              obs_mean=mean, obs_std=std, model_state=self.agent.model.state_dict(),
                              code_version=code_version(), step=self.agent.step,
                              decoder_state=None if self.decoder is None else self.decoder.state_dict())

    def finish(self, wall_s: float) -> dict[str, Any]:
        t, cfg = self.run.train, self.run.agent
        result: dict[str, Any] = {"env": t.env, "mode": t.mode, "seed": t.seed, "steps": self.agent.step,
                                  "profile": self.run.profile, "device": str(self.run.device),
                                  "machine": device_description(self.run.device),
                                  "train_wall_s_this_call": wall_s, "code_version": code_version()}
        if t.mode == "manager":
            result["manager"] = str(self.export(self.run_dir.path / "manager.pt"))
        else:
            mean, std = torch.as_tensor(self.sampler.obs_mean), torch.as_tensor(self.sampler.obs_std)
            planner = LatentPlanner(self.agent.model, cfg, mean, std, self.run.device, seed=t.seed)
            if t.compile:
                planner.compile(**compile_options(t))
            start = time.perf_counter()
            returns = evaluate_policy(t.env, planner, self.run.eval_episodes, seed=t.seed,
                                      num_envs=t.eval_num_envs, show_progress=t.progress)
            scores = get_normalized_score(t.env, returns)
            result.update({"eval_episodes": self.run.eval_episodes, "mean_return": float(returns.mean()),
                           "normalized_score": float(scores.mean()), "normalized_score_std": float(scores.std()),
                           "eval_wall_s": time.perf_counter() - start})
        self.run_dir.finish(result)
        for mirror in self.mirrors:
            mirror.result = result
        return result
