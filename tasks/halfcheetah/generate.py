"""Regenerate halfcheetah-{medium,medium-replay,medium-expert}-v2 with D4RL's procedure.

- medium: `steps` steps of the medium SAC actor with sampled actions (as D4RL: the stochastic
  policy), episodes of 1000 steps back to back, each ending in a `timeouts` flag (halfcheetah never
  terminates, so `terminals` is all False); a last partial episode carries no flag;
- medium-expert: the medium data (the first steps - steps // 2 rows, identical to
  halfcheetah-medium-v2 of the same seed and size, except that its last row is always flagged in
  `timeouts` so the two parts never join into one episode) followed by steps // 2 steps of the
  expert actor;
- medium-replay: the replay buffer, in arrival order, of the seeded SAC run (tasks/halfcheetah/sac.py)
  after `steps` env steps, by default the step at which the committed medium snapshot was taken, so
  with that snapshot's seed it is that run's buffer up to the medium point (warm-up steps included).
  When the run's own checkpoint is on this machine (same settings, at or past that step) its buffer
  prefix is taken, else the run is replayed from scratch: bit-exact only with the same torch build,
  device and thread count, so compare regenerated data statistically.

Keys as D4RL's v2 gym-mujoco files: observations, actions, rewards, next_observations, terminals,
timeouts, infos/action_log_probs, infos/qpos, infos/qvel (float32; terminals/timeouts bool). The
qpos/qvel rows are the state of the `observations` row.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from common.progress import progress_bar
from common.seeding import derived_seed
from tasks.halfcheetah.env import ACT_DIM, OBS_DIM, HalfCheetahEnv
from tasks.halfcheetah.policies import NumpyActor, SnapshotError, asset_path, load_snapshot, read_snapshot_meta

EPISODE_STEPS = 1000
MEDIUM_STREAM, EXPERT_STREAM = 10, 11  # seed words of the two rollout datasets


def rollout_dataset(actor: NumpyActor, steps: int, seed: int, stream: int, show_progress: bool = True,
                    desc: str = "rollouts") -> dict[str, np.ndarray]:
    """`steps` steps of `actor` with sampled actions; episode e resets with seed (seed, stream, e)
    and draws its action noise from rng (seed, stream, e)."""
    env = HalfCheetahEnv()
    nq, nv = env.model.nq, env.model.nv
    data = {
        "observations": np.empty((steps, OBS_DIM), np.float32),
        "actions": np.empty((steps, ACT_DIM), np.float32),
        "rewards": np.empty(steps, np.float32),
        "next_observations": np.empty((steps, OBS_DIM), np.float32),
        "terminals": np.zeros(steps, bool),
        "timeouts": np.zeros(steps, bool),
        "infos/action_log_probs": np.empty(steps, np.float32),
        "infos/qpos": np.empty((steps, nq), np.float32),
        "infos/qvel": np.empty((steps, nv), np.float32),
    }
    with progress_bar(total=steps, desc=desc, enabled=show_progress) as bar:
        for e, start in enumerate(range(0, steps, EPISODE_STEPS)):
            obs, _ = env.reset(seed=derived_seed(seed, stream, e))
            rng = np.random.default_rng([seed, stream, e])
            end = min(start + EPISODE_STEPS, steps)
            for t in range(start, end):
                action, logp = actor.act(obs, rng)
                data["observations"][t] = obs
                data["infos/qpos"][t] = env.data.qpos
                data["infos/qvel"][t] = env.data.qvel
                obs, reward, terminated, _, _ = env.step(action)
                data["actions"][t] = action
                data["rewards"][t] = reward
                data["next_observations"][t] = obs
                data["infos/action_log_probs"][t] = logp
                if terminated:  # never for halfcheetah; kept for the layout's sake
                    data["terminals"][t] = True
                    break
            data["timeouts"][end - 1] = end - start == EPISODE_STEPS
            bar.update(end - start)
    return data


def _concat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _medium_sac_config(seed: int, show_progress: bool):
    from tasks.halfcheetah.sac import SACConfig

    try:
        saved = dict(read_snapshot_meta(asset_path("medium"))["sac_config"])
    except SnapshotError:  # no medium snapshot committed yet: the default settings
        saved = {}
    fields = set(SACConfig.__dataclass_fields__)
    cfg = SACConfig(**{k: v for k, v in saved.items() if k in fields})
    cfg.seed, cfg.progress, cfg.device = seed, show_progress, "cpu"
    return cfg


def checkpoint_transitions(ckpt: dict, steps: int) -> dict[str, np.ndarray]:
    """The first `steps` transitions of a SAC checkpoint's replay buffer, in D4RL's layout."""
    import torch

    from tasks.halfcheetah.replay_buffer import ReplayBuffer, to_d4rl

    buffer = ReplayBuffer(steps, torch.device("cpu"))
    buffer.load_state_dict({"size": steps, "added": steps,
                            "data": {k: v[:steps] for k, v in ckpt["buffer"]["data"].items()}})
    return to_d4rl(buffer)


def replay_dataset(steps: int, seed: int, show_progress: bool = True, cfg=None,
                   root: str | Path | None = None) -> dict[str, np.ndarray]:
    """The seeded SAC run's replay buffer after `steps` env steps, in D4RL's layout."""
    from common.checkpoint import CheckpointError, load_checkpoint
    from tasks.halfcheetah.replay_buffer import to_d4rl
    from tasks.halfcheetah.sac import Trainer, changed_settings

    cfg = _medium_sac_config(seed, show_progress) if cfg is None else replace(cfg, seed=seed)
    ckpt_path = Path(root or cfg.root).expanduser() / "halfcheetah" / "train" / f"seed{seed}" / "checkpoint.pt"
    if ckpt_path.is_file() and steps <= cfg.buffer_size:
        try:
            ckpt = load_checkpoint(ckpt_path)
        except CheckpointError:
            ckpt = None
        if (ckpt is not None and ckpt.get("kind") == "halfcheetah-sac" and ckpt["step"] >= steps
                and not changed_settings(ckpt["config"], cfg)):
            print(f"medium-replay: the first {steps} transitions of {ckpt_path} (step {ckpt['step']})",
                  file=sys.stderr)
            return checkpoint_transitions(ckpt, steps)
    trainer = Trainer(cfg)
    trainer.train(total_steps=steps)
    return to_d4rl(trainer.buffer)


def generate_halfcheetah(kind: str, steps: int, seed: int, show_progress: bool = True) -> dict[str, np.ndarray]:
    if kind == "medium-replay":
        return replay_dataset(steps, seed, show_progress)
    medium, _ = load_snapshot(asset_path("medium"), OBS_DIM, ACT_DIM)
    if kind == "medium":
        return rollout_dataset(medium, steps, seed, MEDIUM_STREAM, show_progress, "medium policy")
    if kind == "medium-expert":
        expert, _ = load_snapshot(asset_path("expert"), OBS_DIM, ACT_DIM)
        first = rollout_dataset(medium, steps - steps // 2, seed, MEDIUM_STREAM, show_progress, "medium policy")
        first["timeouts"][-1] |= ~first["terminals"][-1]  # a partial last episode still ends where the part ends
        return _concat(first, rollout_dataset(expert, steps // 2, seed, EXPERT_STREAM, show_progress, "expert policy"))
    raise ValueError(f"unknown halfcheetah dataset kind {kind!r}")
