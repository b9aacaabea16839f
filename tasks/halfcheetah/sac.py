"""Soft Actor-Critic (Haarnoja et al. 2018, the version with automatic entropy tuning) that trains
the halfcheetah data-collection policies, as D4RL did with rlkit's SAC.

    python -m tasks.halfcheetah.sac --help
    nice -n 10 python -m tasks.halfcheetah.sac --total-steps 3000000   # resumes if interrupted

- actor: tanh-Gaussian, trunk obs-256-256 (ReLU), heads mean and log_std (clipped to [-20, 2]);
- critics: two Q networks (obs+act)-256-256-1, evaluated as one batched ensemble, with Polyak
  targets (tau 0.005); target min(Q1', Q2') - alpha log pi, gamma 0.99, never-terminating env so
  every transition bootstraps (time-limit ends are not terminals);
- alpha: log alpha learned towards target entropy -act_dim, alpha starts at 1;
- Adam lr 3e-4 for all three; batch 256; replay 1M; uniform random actions for the first 10,000
  steps, then one gradient update (critic, actor, alpha, targets) per env step.

Reproducibility: every random draw comes from the torch generator(s) seeded by --seed (network
init, warm-up actions, batch indices, policy noise) or from per-episode reset seeds (seed, 0, k);
evaluation is deterministic (tanh(mean)) on its own envs and draws nothing. Checkpoints are taken at
episode boundaries and hold the generator states, so a resumed run continues bit for bit (same
machine, device, thread count and torch version).

Files (outside the work tree by default): <root>/halfcheetah/train/seed<k>/ with config.yaml,
metrics.csv (one row per evaluation: returns, losses, alpha, updates/s), checkpoint.pt (atomic,
torch.load(weights_only=True)), medium.pt/.json (the actor at the first evaluation whose return
reaches --medium-return), best.pt/.json (the best actor so far), final.json. Copy medium.* and
best.* into tasks/halfcheetah/assets/ (best as expert.*) to commit them.

Continuing on another machine (--warm-start tasks/halfcheetah/assets/expert.pt): the checkpoint
holds the replay buffer (about 180 bytes per step) and is not committed, so a new machine cannot
resume the run itself. A warm start continues from a committed actor snapshot instead: the run's
step count starts at the snapshot's env steps; --warm-collect-steps env steps fill the empty buffer
with no updates; then --warm-critic-steps steps train the new critics alone (actor and alpha held,
alpha at the snapshot's recorded value or --warm-alpha) so the actor first meets critics that know
it; then SAC goes on as usual. While the actor is held, each step acts uniformly at random with
probability --warm-random-prob, else with the actor's sampled action: critics fitted to the actor's
own actions alone misjudge the others, and the actor collapsed as soon as it followed them. Its own
checkpoints resume bit for bit as above.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.atomic import write_json_atomic
from common.checkpoint import CheckpointError, load_checkpoint, save_atomic
from common.cli import config_field, parse_config
from common.device import DEVICE_CHOICES, resolve_device
from common.errors import INPUT_ERRORS, report_input_error
from common.metrics import MetricWindow
from common.progress import progress_bar
from common.run_dir import RunDir
from common.seeding import derived_seed
from tasks.halfcheetah.env import ACT_DIM, OBS_DIM, HalfCheetahEnv
from tasks.halfcheetah.policies import read_snapshot, save_snapshot
from tasks.halfcheetah.replay_buffer import ReplayBuffer
from tasks.halfcheetah.sac_learner import SAC

CHECKPOINT_FORMAT = 1
EPISODE_STEPS = 1000  # D4RL's (and gymnasium's) halfcheetah time limit
REF_MIN, REF_MAX = -280.178953, 12135.0
# settings that must match for a checkpoint to be resumed (total_steps etc. may change)
TRAINING_KEYS = ("seed", "warmup_steps", "batch_size", "buffer_size", "hidden", "lr", "gamma", "tau",
                 "init_alpha", "target_entropy", "eval_every", "eval_episodes", "checkpoint_every",
                 "medium_return", "warm_start", "warm_collect_steps", "warm_critic_steps", "warm_alpha",
                 "warm_random_prob", "warm_actor_ramp_steps")


@dataclass
class SACConfig:
    total_steps: int = config_field(1_000_000, "env steps to train for (one gradient update per env step "
                                               "after the warm-up); a resumed run may raise it")
    seed: int = config_field(0, "seed of everything (network init, warm-up actions, batches, noise, resets)")
    warmup_steps: int = config_field(10_000, "uniform random actions (and no updates) for this many first steps")
    batch_size: int = config_field(256, "minibatch size")
    buffer_size: int = config_field(1_000_000, "replay buffer capacity (oldest transitions dropped beyond it)")
    hidden: int = config_field(256, "width of the two hidden layers of actor and critics")
    lr: float = config_field(3e-4, "Adam learning rate of actor, critics and alpha")
    gamma: float = config_field(0.99, "discount")
    tau: float = config_field(0.005, "Polyak rate of the target critics")
    init_alpha: float = config_field(1.0, "initial entropy temperature")
    target_entropy: float | None = config_field(None, "entropy target of alpha tuning (default: -act_dim = -6)")
    eval_every: int = config_field(5_000, "evaluate (deterministic actions) every this many env steps; "
                                          "a multiple of the 1000-step episode")
    eval_episodes: int = config_field(5, "episodes per evaluation")
    checkpoint_every: int = config_field(20_000, "write checkpoint.pt every this many env steps (a multiple of "
                                                 "1000: checkpoints fall on episode boundaries)")
    medium_return: float = config_field(
        4800.0, "evaluation return at which the medium snapshot is taken (D4RL's medium policy: normalised "
                "40-45, i.e. return 4690-5310; about one third of the expert's normalised score)")
    warm_start: str | None = config_field(
        None, "actor snapshot (.pt with its .json sidecar, e.g. tasks/halfcheetah/assets/expert.pt) to continue "
              "from on a machine without the run's checkpoint; steps count on from the snapshot's env steps")
    warm_collect_steps: int = config_field(10_000, "warm start: env steps into the empty buffer (see --warm-random-prob) "
                                                   "before any update")
    warm_critic_steps: int = config_field(
        100_000, "warm start: then this many steps (one update each) train the new critics alone, actor and alpha "
                 "held; Q nears its fixed point with time constant 1/(tau (1 - gamma)) = 20,000 updates")
    warm_random_prob: float = config_field(
        0.5, "warm start: until the actor learns, each step takes a uniform random action with this probability, "
             "so the new critics also learn what actions away from the actor's are worth (critics fitted to the "
             "actor's own actions alone misled it: it collapsed when it began to learn; docs/tasks.md)")
    warm_actor_ramp_steps: int = config_field(
        0, "warm start: once the actor learns, its learning rate rises linearly from 0 to --lr over this many "
           "steps (0: at once), so the critics can follow what it does")
    warm_alpha: float | None = config_field(
        None, "warm start: entropy temperature to start from (default: the snapshot's recorded alpha, else 0.1)")
    device: str = config_field("cpu", DEVICE_CHOICES)
    threads: int = config_field(1, "torch CPU threads (1: share the machine, and bit-exact resumes)")
    root: str = config_field("~/.cache/iql_td_mpc/sac", "folder of the training runs: "
                                                       "<root>/halfcheetah/train/seed<k>/")
    resume: bool = config_field(True, "continue from the run's checkpoint.pt when there is one")
    progress: bool = config_field(True, "show a progress bar")


def changed_settings(saved: dict[str, Any], cfg: SACConfig) -> list[str]:
    """The TRAINING_KEYS on which a checkpoint's saved config differs from `cfg` (a key the saved
    config predates counts as its default)."""
    defaults, mine = asdict(SACConfig()), asdict(cfg)
    return [k for k in TRAINING_KEYS if mine[k] != saved.get(k, defaults[k])]


# --- the training run ------------------------------------------------------------------------
class Trainer:
    """One seeded SAC run. `run_dir=None` keeps everything in memory (used to regenerate
    medium-replay and by the tests)."""

    def __init__(self, cfg: SACConfig, run_dir: RunDir | None = None):
        for name in ("eval_every", "checkpoint_every"):
            if getattr(cfg, name) % EPISODE_STEPS:
                raise ValueError(f"--{name.replace('_', '-')} must be a multiple of {EPISODE_STEPS}, "
                                 f"got {getattr(cfg, name)}")
        self.cfg, self.run_dir = cfg, run_dir
        self.device = resolve_device(cfg.device)
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # seeds CPU and every CUDA generator
        self.agent = SAC(cfg, OBS_DIM, ACT_DIM, self.device)
        self.buffer = ReplayBuffer(cfg.buffer_size, self.device)
        self.env = HalfCheetahEnv()
        self.eval_envs: list[HalfCheetahEnv] | None = None
        self.step = 0          # env steps taken
        self.episode = 0       # episodes started
        self.episode_step = 0
        self.episode_return = 0.0
        self.last_train_return = float("nan")
        self.best_return = -math.inf
        self.medium: dict[str, Any] | None = None
        self.train_seconds = 0.0
        self.evals: list[dict[str, Any]] = []
        self._obs: np.ndarray | None = None
        self.warm: dict[str, Any] | None = None  # what a --warm-start run continues from
        self._set_phases()

    def _set_phases(self) -> None:
        """The env steps from which SAC updates (before: warm-up or warm-start collection) and from
        which the actor and alpha learn too (before: critics alone, warm start only)."""
        if self.warm is None:
            self.learn_from = self.actor_from = self.cfg.warmup_steps
        else:
            self.learn_from = self.warm["env_steps"] + self.cfg.warm_collect_steps
            self.actor_from = self.learn_from + self.cfg.warm_critic_steps

    def _ramp_actor_lr(self) -> None:
        ramp = self.cfg.warm_actor_ramp_steps
        if self.warm is not None and ramp > 0 and self.step < self.actor_from + ramp:
            scale = max(0, self.step - self.actor_from + 1) / ramp
            for group in self.agent.actor_opt.param_groups:
                group["lr"] = self.cfg.lr * scale

    def warm_start(self) -> None:
        """Continue from the --warm-start actor snapshot (a fresh trainer only): its weights, its env
        step count, alpha as recorded with it (or --warm-alpha, else 0.1); new critics, empty buffer."""
        cfg = self.cfg
        if self.step != 0:
            raise RuntimeError("a warm start begins a run; this trainer has already stepped")
        path = Path(cfg.warm_start).expanduser()
        blob, meta = read_snapshot(path, OBS_DIM, ACT_DIM)
        if blob["hidden"] != cfg.hidden:
            raise ValueError(f"--warm-start {path} has hidden layers of {blob['hidden']}, this run {cfg.hidden}: "
                             f"pass --hidden {blob['hidden']}")
        self.agent.actor.load_state_dict(blob["state_dict"])
        alpha = float(cfg.warm_alpha if cfg.warm_alpha is not None else meta.get("alpha", 0.1))
        with torch.no_grad():
            self.agent.log_alpha.fill_(math.log(alpha))
        self.warm = {"file": str(path), "sha256": meta["sha256"], "env_steps": int(meta["env_steps"]),
                     "gradient_updates": int(meta.get("gradient_updates", 0)), "alpha": alpha,
                     "eval_return": meta.get("eval_return")}
        self.step = self.warm["env_steps"]
        self.medium = {"step": None, "note": f"warm start from {path}: no medium snapshot"}
        self._set_phases()

    # checkpointing
    @property
    def checkpoint_path(self) -> Path | None:
        return self.run_dir.path / "checkpoint.pt" if self.run_dir else None

    def state_dict(self) -> dict[str, Any]:
        if self.episode_step != 0:
            raise RuntimeError("checkpoints are taken at episode boundaries only")
        return {"format": CHECKPOINT_FORMAT, "kind": "halfcheetah-sac", "config": asdict(self.cfg),
                "step": self.step, "episode": self.episode, "last_train_return": self.last_train_return,
                "best_return": self.best_return, "medium": self.medium, "train_seconds": self.train_seconds,
                "evals": self.evals, "warm": self.warm, "agent": self.agent.state_dict(),
                "buffer": self.buffer.state_dict(),
                "rng": {"torch": torch.get_rng_state(),
                        "cuda": torch.cuda.get_rng_state() if self.device.type == "cuda" else None}}

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        if ckpt.get("kind") != "halfcheetah-sac" or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"not a halfcheetah SAC checkpoint (kind={ckpt.get('kind')}, "
                                  f"format={ckpt.get('format')})")
        mine, theirs = asdict(self.cfg), {**asdict(SACConfig()), **ckpt["config"]}  # predated keys: defaults
        changed = changed_settings(theirs, self.cfg)
        if changed:
            raise CheckpointError("the checkpoint was trained with other settings: " + ", ".join(
                f"{k}={theirs[k]!r} (now {mine[k]!r})" for k in changed) + "; pass the same settings "
                "or start a new run (--no-resume, or another --root / --seed)")
        self.agent.load_state_dict(ckpt["agent"])
        self.buffer.load_state_dict(ckpt["buffer"])
        self.step, self.episode = int(ckpt["step"]), int(ckpt["episode"])
        self.last_train_return = float(ckpt["last_train_return"])
        self.best_return, self.medium = float(ckpt["best_return"]), ckpt["medium"]
        self.train_seconds, self.evals = float(ckpt["train_seconds"]), list(ckpt["evals"])
        self.warm = ckpt.get("warm")
        self._set_phases()
        self.episode_step, self.episode_return = 0, 0.0
        torch.set_rng_state(ckpt["rng"]["torch"])
        if ckpt["rng"]["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"])

    def save_checkpoint(self) -> None:
        if self.checkpoint_path is not None:
            save_atomic(self.state_dict(), self.checkpoint_path)

    # acting
    def _act(self, obs: np.ndarray) -> tuple[np.ndarray, float]:
        if self.warm is None:
            explore = self.step < self.cfg.warmup_steps
        else:  # the warm start's broadened data, while the actor is held
            p = self.cfg.warm_random_prob
            explore = self.step < self.actor_from and p > 0 and bool(torch.rand(()) < p)
        if explore:
            action = torch.rand(ACT_DIM) * 2.0 - 1.0
            return action.numpy(), -ACT_DIM * math.log(2.0)  # density of U(-1, 1)^6
        with torch.no_grad():
            act, logp = self.agent.actor.sample(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        return act.cpu().numpy(), float(logp)

    def env_step(self) -> None:
        """One env step into the buffer (resetting at episode starts)."""
        if self.episode_step == 0:
            self._obs, _ = self.env.reset(seed=derived_seed(self.cfg.seed, 0, self.episode))
            self.episode_return = 0.0
        obs = self._obs
        x_before = float(self.env.data.qpos[0])
        action, logp = self._act(obs)
        next_obs, reward, terminated, _, _ = self.env.step(action)
        self.episode_step += 1
        timeout = self.episode_step == EPISODE_STEPS
        self.buffer.add(observations=obs, actions=action, rewards=reward, next_observations=next_obs,
                        terminals=float(terminated), timeouts=float(timeout and not terminated),
                        action_log_probs=logp, x_positions=x_before)
        self.episode_return += float(reward)
        self._obs = next_obs
        self.step += 1
        if terminated or timeout:
            self.last_train_return = self.episode_return
            self.episode += 1
            self.episode_step = 0

    def evaluate(self) -> tuple[float, float]:
        """Mean and std of the return of tanh(mean) over cfg.eval_episodes fixed-start episodes."""
        n = self.cfg.eval_episodes
        if self.eval_envs is None:
            self.eval_envs = [HalfCheetahEnv() for _ in range(n)]
        obs = np.stack([env.reset(seed=derived_seed(self.cfg.seed, 1, e))[0] for e, env in enumerate(self.eval_envs)])
        returns = np.zeros(n)
        with torch.no_grad():
            for _ in range(EPISODE_STEPS):
                mean, _ = self.agent.actor(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
                actions = torch.tanh(mean).cpu().numpy()
                for i, env in enumerate(self.eval_envs):
                    obs[i], reward, _, _, _ = env.step(actions[i])
                    returns[i] += reward
        return float(returns.mean()), float(returns.std())

    def _snapshot(self, name: str, eval_return: float) -> None:
        if self.run_dir is None:
            return
        from tasks.datasets import code_version

        meta = {"policy": name, "env": "halfcheetah (gymnasium HalfCheetah-v5 dynamics)",
                "eval_return": eval_return, "eval_episodes": self.cfg.eval_episodes,
                "eval_actions": "tanh(mean)",
                "normalized_score": 100.0 * (eval_return - REF_MIN) / (REF_MAX - REF_MIN),
                "env_steps": self.step,
                "gradient_updates": (self.warm or {}).get("gradient_updates", 0) + max(0, self.step - self.learn_from),
                "alpha": float(self.agent.log_alpha.detach().exp()), "warm_start": self.warm,
                "train_seconds": round(self.train_seconds, 1), "device": str(self.device),
                "sac_config": asdict(self.cfg), "code_version": code_version()}
        save_snapshot(self.run_dir.path / f"{name}.pt", self.agent.actor.state_dict(), OBS_DIM, ACT_DIM,
                      self.cfg.hidden, meta)

    # the loop
    def train(self, total_steps: int | None = None, on_eval=None) -> dict[str, Any]:
        cfg = self.cfg
        total = cfg.total_steps if total_steps is None else total_steps
        window = MetricWindow(self.device, self.step)
        updates_since, clock = 0, time.perf_counter()
        with progress_bar(total=total, desc="SAC halfcheetah", enabled=cfg.progress) as bar:
            bar.update(self.step)
            while self.step < total:
                self.env_step()
                if self.step >= self.learn_from:
                    self._ramp_actor_lr()
                    window.add(self.agent.update(*self.buffer.sample(cfg.batch_size),
                                                 train_actor=self.step >= self.actor_from))
                    updates_since += 1
                bar.update(1)
                eval_now = self.step % cfg.eval_every == 0 and self.run_dir is not None
                ckpt_now = self.step % cfg.checkpoint_every == 0 or self.step == total
                if eval_now or ckpt_now:
                    elapsed = time.perf_counter() - clock
                    self.train_seconds += elapsed
                    if eval_now:
                        window.check(self.checkpoint_path, "lower --lr or change --seed")
                        row = self._log_eval(window.means(), updates_since / max(elapsed, 1e-9))
                        bar.set_postfix(ret=f"{row['eval_return']:.0f}", ups=f"{row['updates_per_s']:.0f}")
                        if on_eval is not None:
                            on_eval(row)
                        updates_since = 0
                    if ckpt_now and self.episode_step == 0:
                        self.save_checkpoint()
                    clock = time.perf_counter()
        return {"env_steps": self.step, "episodes": self.episode, "best_eval_return": self.best_return,
                "medium": self.medium, "train_seconds": self.train_seconds}

    def _log_eval(self, means: dict[str, float], updates_per_s: float) -> dict[str, Any]:
        eval_return, eval_std = self.evaluate()
        row = {"step": self.step, "episode": self.episode, "eval_return": round(eval_return, 3),
               "eval_return_std": round(eval_std, 3),
               "normalized_score": round(100.0 * (eval_return - REF_MIN) / (REF_MAX - REF_MIN), 3),
               "train_return": round(self.last_train_return, 3),
               **{k: round(means.get(k, float("nan")), 6) for k in ("critic_loss", "actor_loss", "alpha", "entropy", "q")},
               "updates_per_s": round(updates_per_s, 1), "train_seconds": round(self.train_seconds, 1)}
        self.evals.append({"step": self.step, "eval_return": eval_return})
        self.run_dir.log_metrics(row)
        if self.medium is None and eval_return >= self.cfg.medium_return:
            self.medium = {"step": self.step, "eval_return": eval_return}
            self._snapshot("medium", eval_return)
        if eval_return > self.best_return:
            self.best_return = eval_return
            self._snapshot("best", eval_return)
        return row


def run_training(cfg: SACConfig) -> dict[str, Any]:
    run = RunDir(Path(cfg.root).expanduser(), "halfcheetah", "train", cfg.seed)
    with run.claim():  # this process alone trains in the folder (a fresh run clears it)
        trainer = Trainer(cfg, run)
        resumed = False
        if cfg.resume and trainer.checkpoint_path.is_file():
            trainer.load_state_dict(load_checkpoint(trainer.checkpoint_path, fix="pass --no-resume to start "
                                                    "the run again from step 0"))
            run.truncate_metrics(trainer.step)
            resumed = True
            print(f"resumed {trainer.checkpoint_path} at step {trainer.step}", file=sys.stderr)
        else:  # a fresh run: nothing of an earlier run in this folder survives
            for name in ("checkpoint.pt", "metrics.csv", "final.json", "medium.pt", "medium.json", "best.pt", "best.json"):
                (run.path / name).unlink(missing_ok=True)
            if cfg.warm_start:
                trainer.warm_start()
                print(f"warm start from {cfg.warm_start} at step {trainer.step}", file=sys.stderr)
            run.start(cfg)

        def report(row: dict[str, Any]) -> None:  # one line per evaluation when there is no progress bar
            print(f"step {row['step']} eval_return {row['eval_return']:.1f} (normalised {row['normalized_score']:.1f}) "
                  f"alpha {row['alpha']:.4f} updates/s {row['updates_per_s']:.1f}", flush=True)

        result = trainer.train(on_eval=None if cfg.progress else report)
        result.update(resumed=resumed, run_dir=str(run.path), config=asdict(cfg))
        write_json_atomic(run.final_path, result)
        return result


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(SACConfig, "python -m tasks.halfcheetah.sac", __doc__, argv)
    try:
        result = run_training(cfg)
    except INPUT_ERRORS as exc:
        return report_input_error(exc)
    print(f"done: {result['env_steps']} env steps, best eval return {result['best_eval_return']:.1f}, "
          f"run folder {result['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
