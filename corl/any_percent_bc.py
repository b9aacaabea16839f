"""Any-percent behavioural cloning (CORL's any_percent_bc.py): ALGO=bc clones the whole dataset
(frac 1.0), ALGO=bc_10 the best 10% of its trajectories by discounted return.

    python -m corl.any_percent_bc --algo bc --env maze2d-umaze-v1 --intent manager
    python -m corl.any_percent_bc --help

The plugin is reached through exactly two lines, marked with the PLUGIN(intents) comment.
"""
# (no `from __future__ import annotations`: pyrallis needs evaluated field types)

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from common.cli import config_field as field
from corl.shared.compiled import CompiledLosses
from corl.shared.config import WorkerConfig, worker_main
from corl.shared.data import episode_slices, load_transitions
from corl.shared.nets import DeterministicActor
from corl.shared.run import WorkerRun
from wrappers import augment, wrap_env


@dataclass
class BCConfig(WorkerConfig):
    algo: str = field("bc", "bc (frac 1.0) | bc_10 (frac 0.1)")
    batch_size: int = field(256, "training batch size")
    frac: float = field(1.0, "top fraction of the dataset's trajectories (by discounted return) to clone")
    max_traj_len: int = field(1000, "maximum trajectory length when splitting the dataset")
    normalize: bool = field(True, "normalise states with the dataset's mean and std")
    discount: float = field(0.99, "discount of the returns that rank trajectories")
    actor_lr: float = field(3e-4, "Adam learning rate")


def keep_best_trajectories(dataset: dict[str, np.ndarray], frac: float, discount: float,
                           max_episode_steps: int) -> dict[str, np.ndarray]:
    """Rows of the best `frac` of trajectories by discounted return, best first (CORL's order)."""
    slices = episode_slices(dataset, max_episode_steps)
    returns = [float((dataset["rewards"][s] * discount ** np.arange(s.stop - s.start)).sum()) for s in slices]
    best = np.argsort(returns, kind="stable")[::-1][: max(1, int(frac * len(slices)))]
    rows = np.concatenate([np.arange(slices[i].start, slices[i].stop) for i in best])
    return {k: v[rows] for k, v in dataset.items()}


def bc_loss(predicted: Tensor, action: Tensor) -> Tensor:
    return ((predicted - action) ** 2).mean()


class BC(CompiledLosses):
    LOSS_METHODS = ("_loss",)  # --compile: torch.compile'd (corl/shared/compiled.py)

    def __init__(self, actor: DeterministicActor, lr: float):
        self.actor = actor
        self.optimizer = torch.optim.Adam(actor.parameters(), lr=lr)

    def _loss(self, state: Tensor, action: Tensor) -> Tensor:
        return bc_loss(self.actor(state), action)

    def update(self, batch: list[Tensor]) -> dict[str, Tensor]:
        state, action = batch[0], batch[1]
        loss = self._loss(state, action)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"actor_loss": loss.detach()}

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        return self.actor(obs)

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.optimizer.load_state_dict(state["optimizer"])


def build_algo(cfg: BCConfig, state_dim: int, action_dim: int, max_action: float,
               device: str | torch.device) -> BC:
    """The actor and the algorithm of one run (also used by benchmarks/worker_speed.py)."""
    return BC(DeterministicActor(state_dim, action_dim, max_action).to(device), cfg.actor_lr)


def train(cfg: BCConfig) -> dict[str, Any] | None:
    run = WorkerRun(cfg)
    cfg = run.cfg
    dataset = load_transitions(cfg.env, cfg.data_dir, show_progress=cfg.progress)
    dataset = augment(dataset, run.intents)  # PLUGIN(intents): append g_t to the dataset's states
    dataset = keep_best_trajectories(dataset, cfg.frac, cfg.discount, cfg.max_traj_len)
    eval_env = wrap_env(run.make_eval_env(), run.intents)  # PLUGIN(intents): concat(s_t, g_t) at evaluation
    return run.fit(dataset, eval_env, build_algo)


def main(argv: list[str] | None = None) -> int:
    return worker_main(BCConfig, "bc", train, argv)  # bc_10: --algo bc_10 picks presets/bc_10 (frac 0.1)


if __name__ == "__main__":
    sys.exit(main())
