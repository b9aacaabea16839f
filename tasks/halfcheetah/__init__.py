"""halfcheetah-{medium,medium-replay,medium-expert}-v2: gym's HalfCheetah (here gymnasium's v5
dynamics on `mujoco`) and datasets made, as D4RL made them, with SAC policies of our own
(tasks/halfcheetah/sac.py; snapshots in tasks/halfcheetah/assets/)."""
from __future__ import annotations

import json
from pathlib import Path

from tasks.halfcheetah.env import HalfCheetahEnv

ASSETS_DIR = Path(__file__).resolve().parent / "assets"

REF_MIN, REF_MAX = -280.178953, 12135.0  # d4rl/infos.py, halfcheetah-*-v2
MAX_EPISODE_STEPS = 1000
DATASET_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations",
                "infos/action_log_probs", "infos/qpos", "infos/qvel")

# name: (dataset kind, D4RL's file name)
HALFCHEETAH_TASKS = {
    "halfcheetah-medium-v2": ("medium", "halfcheetah_medium-v2.hdf5"),
    "halfcheetah-medium-replay-v2": ("medium-replay", "halfcheetah_medium_replay-v2.hdf5"),
    "halfcheetah-medium-expert-v2": ("medium-expert", "halfcheetah_medium_expert-v2.hdf5"),
}
D4RL_SIZES = {"medium": 1_000_000, "medium-replay": 202_000, "medium-expert": 2_000_000}
# the committed snapshots each dataset kind is made from (medium-replay: the run up to the medium point)
SNAPSHOTS_USED = {"medium": ("medium",), "medium-replay": ("medium",), "medium-expert": ("medium", "expert")}


def make_halfcheetah_env() -> HalfCheetahEnv:
    return HalfCheetahEnv()


def committed_sidecar(name: str) -> dict | None:
    """The JSON sidecar of the committed `name` snapshot, None if there is none. Read here without
    the snapshot module (it imports torch), since the task registry calls this at import time."""
    sidecar = ASSETS_DIR / f"{name}.json"
    return json.loads(sidecar.read_text()) if sidecar.is_file() else None


def dataset_steps(kind: str) -> int:
    """Default size: D4RL's, except medium-replay: the env steps of the run that made the committed
    medium snapshot (its buffer up to the medium point), D4RL's 202,000 while there is none."""
    medium = committed_sidecar("medium") if kind == "medium-replay" else None
    return int(medium["env_steps"]) if medium else D4RL_SIZES[kind]


def make_sources(kind: str):
    """TaskSpec.dataset_sources for one dataset kind: {"<snapshot>_sha256": sha256 of the committed
    .pt} for each snapshot the data is made from (a snapshot not committed yet is left out)."""

    def sources() -> dict[str, str]:
        sidecars = {name: committed_sidecar(name) for name in SNAPSHOTS_USED[kind]}
        return {f"{name}_sha256": meta["sha256"] for name, meta in sidecars.items() if meta}

    return sources


def snapshot_policy(name: str, stochastic: bool):
    """evaluate --policy entry: the committed `name` snapshot, sampled actions (as in the datasets)
    or the deterministic tanh(mean)."""

    def factory(spec, seed: int = 0, d4rl_protocol: bool = False):
        from tasks.halfcheetah.policies import SnapshotPolicy, asset_path, load_snapshot

        actor, meta = load_snapshot(asset_path(name), spec.obs_dim, spec.act_dim)
        return SnapshotPolicy(actor, seed, stochastic, source={"file": meta["file"], "sha256": meta["sha256"]})

    return factory


SCRIPTED_POLICIES = {
    "medium": snapshot_policy("medium", stochastic=True),
    "expert": snapshot_policy("expert", stochastic=True),
    "medium-mean": snapshot_policy("medium", stochastic=False),
    "expert-mean": snapshot_policy("expert", stochastic=False),
}


def make_generator(kind: str):
    """TaskSpec.generate for one dataset kind: (spec, steps, seed, show_progress) -> arrays."""

    def generate(spec, steps: int, seed: int, show_progress: bool = True):
        from tasks.halfcheetah.generate import generate_halfcheetah

        return generate_halfcheetah(kind, steps, seed, show_progress)

    return generate
