"""Acting with a trained world model: the Manager's intents and the flat agents' MPC policy.

Intents (paper eq. 5): g_t = f(z_t, a_t) - z_t with z_t = h(s_t), where
  - at evaluation a_t is the first action of the Manager's plan from z_t (re-planned every step):
    `ManagerIntents.plan_intents(obs)`;
  - for dataset relabelling a_t = b(z_t, z_{t+k}), the most likely class of each categorical:
    `ManagerIntents.pair_intents(obs_t, obs_t_plus_k)`.
Both take batches of RAW observations (normalisation is inside) and run on the Manager's device.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from common.checkpoint import file_sha256
from common.device import resolve_device
from common.normalization import normalized_tensor
from manager import distributions as D
from manager.checkpoint import config_from_dict, load_manager_file
from manager.config import AgentConfig
from manager.planner import PlanNoise, draw_plan_noise, mppi_plan, policy_samples_plan
from manager.world_model import Decoder, WorldModel


class LatentPlanner:
    """Batched MPC with a world model: policy-sample planning (IQL-TD-MPC, Manager) or MPPI (TD-MPC)."""

    def __init__(self, model: WorldModel, cfg: AgentConfig, obs_mean: Tensor, obs_std: Tensor,
                 device: torch.device, seed: int = 0):
        self.model, self.cfg, self.device = model.eval(), cfg, device
        self.obs_mean, self.obs_std = obs_mean.to(device), obs_std.to(device)
        self.generator = torch.Generator(device).manual_seed(seed)
        self.prev_mean: Tensor | None = None  # MPPI warm start (H, N, A)
        self._plan = self._plan_from_noise  # torch.compile(...) after compile()

    def normalize(self, obs: np.ndarray | Tensor) -> Tensor:
        return normalized_tensor(obs, self.obs_mean, self.obs_std)

    def reset(self, episode_ids=None) -> None:
        self.prev_mean = None

    def reseed(self, seed: int) -> None:
        """Start the planner's sampling over from `seed` (the same plans at every evaluation)."""
        self.generator.manual_seed(seed)
        self.reset()

    def compile(self, **compile_kwargs) -> None:
        """Plan through `torch.compile` (the draws stay eager; the first plan and the first warm-started
        one compile)."""
        self._plan = torch.compile(self._plan_from_noise, fullgraph=True, **compile_kwargs)

    def draw(self, z: Tensor) -> PlanNoise:
        """Every random draw of the next plan from latents z (N, d)."""
        cfg = self.cfg  # MPPI's Gaussian sequences are drawn only where num_random_samples > 0 (td_mpc)
        return draw_plan_noise(self.model, z, horizon=cfg.horizon, num_pi_samples=cfg.num_pi_samples,
                               num_elites=cfg.num_elites, generator=self.generator,
                               num_random=cfg.num_random_samples, iterations=cfg.mppi_iterations)

    @torch.no_grad()
    def _plan_from_noise(self, z: Tensor, noise: PlanNoise, prev_mean: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(first actions (N, A), MPPI's mean (H, N, A) or None): pure given the noise."""
        cfg = self.cfg
        if noise.gaussian is not None:
            return mppi_plan(self.model, z, noise, num_elites=cfg.num_elites, momentum=cfg.mppi_momentum,
                             temperature=cfg.temperature, min_std=cfg.std_final, gamma=cfg.gamma, prev_mean=prev_mean)
        return policy_samples_plan(self.model, z, noise, num_elites=cfg.num_elites, temperature=cfg.temperature,
                                   gamma=cfg.gamma), None

    @torch.no_grad()
    def plan(self, z: Tensor) -> Tensor:
        """First actions (N, A) of the plans from latents z (N, d)."""
        action, mean = self._plan(z, self.draw(z), self.prev_mean)
        if mean is not None:  # a copy: under CUDA graphs (--compile-mode reduce-overhead) the next replay
            self.prev_mean = mean.clone()  # reuses the output's memory
        return action

    @torch.no_grad()
    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Batch policy for tasks.evaluate_policy: raw obs (N, obs_dim) -> env actions (N, A)."""
        return self.plan(self.model.encode(self.normalize(obs))).cpu().numpy()


class ManagerIntents:
    """An exported Manager, loaded for producing intents (refuses another env / obs size)."""

    def __init__(self, path: str | os.PathLike, env: str | None = None, obs_dim: int | None = None,
                 device: str | torch.device | None = None, seed: int = 0):
        self.device = resolve_device("auto" if device is None else str(device))
        payload = load_manager_file(path, env=env, obs_dim=obs_dim, map_location=self.device)
        self.env, self.k, self.obs_dim = payload["env"], payload["k"], payload["obs_dim"]
        self.cfg = config_from_dict(payload["config"])
        model = WorldModel(payload["obs_dim"], payload["act_dim"], self.cfg).to(self.device)
        model.load_state_dict(payload["model"])
        self.model = model.eval().requires_grad_(False)
        self.intent_dim = self.cfg.latent_dim
        self.planner = LatentPlanner(self.model, self.cfg, payload["obs_mean"], payload["obs_std"], self.device, seed)
        self.code_version = payload["code_version"]
        # which exact Manager this is, for the results made with its intents (a worker's final.json)
        self.source = {"file": str(Path(path).resolve()), "sha256": file_sha256(path), "step": payload.get("step")}
        self.decoder = None
        if payload.get("decoder") is not None:
            hidden = payload["decoder"]["net.0.weight"].shape[0]
            self.decoder = Decoder(self.cfg.latent_dim, self.obs_dim, hidden).to(self.device)
            self.decoder.load_state_dict(payload["decoder"])
            self.decoder.eval().requires_grad_(False)

    def encode(self, obs: np.ndarray | Tensor) -> Tensor:
        return self.model.encode(self.planner.normalize(obs))

    def _shape_of(self, obs, name: str) -> tuple[int, ...]:
        """The shape of raw observations, (N, obs_dim) or one (obs_dim,), else a ValueError naming it
        (read from the array's metadata: no copy, no device sync)."""
        shape = tuple(np.shape(obs))  # a tensor's own .shape, wherever it lives: no copy
        if len(shape) not in (1, 2) or shape[-1] != self.obs_dim:
            raise ValueError(f"{name}: expected raw observations of shape (N, {self.obs_dim}) or ({self.obs_dim},) "
                             f"for this Manager ({self.env}), got {shape}")
        return shape

    @torch.no_grad()
    def plan_intents(self, obs: np.ndarray | Tensor) -> Tensor:
        """(N, obs_dim) raw observations -> (N, d) intents from the first planned action; one
        observation (obs_dim,) -> one intent (d,)."""
        if len(self._shape_of(obs, "plan_intents")) == 1:
            return self.plan_intents((obs if isinstance(obs, Tensor) else np.asarray(obs))[None])[0]
        z = self.encode(obs)
        return self.model.next(z, self.planner.plan(z)) - z

    @torch.no_grad()
    def pair_intents(self, obs_t: np.ndarray | Tensor, obs_t_plus_k: np.ndarray | Tensor) -> Tensor:
        """(N, obs_dim) x 2 raw observations -> (N, d) intents with a = mode of b(z_t, z_{t+k}) (or
        one pair of (obs_dim,) -> (d,))."""
        shapes = self._shape_of(obs_t, "pair_intents obs_t"), self._shape_of(obs_t_plus_k, "pair_intents obs_t_plus_k")
        if shapes[0] != shapes[1]:
            raise ValueError(f"pair_intents: obs_t {shapes[0]} and obs_t_plus_k {shapes[1]} must pair row by row")
        z, z_k = self.encode(obs_t), self.encode(obs_t_plus_k)
        a = D.categorical_mode(self.model.inverse(z, z_k))
        return self.model.next(z, a) - z

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Latents (N, d) -> raw observations (N, obs_dim) through the optional decoder (paper Fig. 2);
        decode(encode(s) + g) shows where an intent g points (the state about k steps on)."""
        if self.decoder is None:
            raise ValueError("this Manager was exported without a decoder; train it with --decoder true")
        return self.decoder(z) * self.planner.obs_std + self.planner.obs_mean
