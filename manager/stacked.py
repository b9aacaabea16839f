"""Several seeds of one agent config updated as one: parameters stacked on a leading seed axis.

`StackedAgents(agents)` takes S agents (same config, same step, e.g. seeds 0..S-1) and keeps their
weights, target weights and Adam moments as (S, ...) tensors. One update then runs
- one `torch.func.vmap` of `Agent.losses` over the seed axis (each layer one batched matmul for all
  seeds instead of S small ones: the point on a GPU, where these nets are bound by kernel launches),
- one backward pass (seeds share no weights, so each gets exactly its own gradients),
- one Adam step per optimiser (Adam is elementwise: a stacked Adam is S Adams),
while what is per seed stays per seed: every agent draws its noise from its own generator (the same
draws as when it trains alone), each seed's gradients are clipped by that seed's own norm, each
seed's batch comes from its own sampler. The numbers equal S separate `Agent.update` runs up to
float rounding (a batched matmul may sum in another order); tests/test_manager_stacked.py.

`write_back()` puts every seed's weights, targets, Adam moments and step back into its `Agent`, so
checkpoints, export and evaluation stay the single-seed code (and a run may continue alone).
`compile()` hands the vmapped loss computation to torch.compile (it traces as one graph).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from common.nn_ops import ema_update
from manager.agent import Agent, UpdateLosses, UpdateNoise
from manager.data import SequenceBatch


class _SeedLosses(nn.Module):
    """`Agent.losses` as a module call, so `functional_call` can swap in one seed's tensors."""

    def __init__(self, agent: Agent):
        super().__init__()
        self.model, self.target = agent.model, agent.target
        self.agent = agent  # not a Module: the losses' code, sharing the two modules above

    def forward(self, batch: dict[str, Tensor], noise: dict[str, Tensor]) -> UpdateLosses:
        return self.agent.losses(SequenceBatch(**batch),
                                 UpdateNoise(**{name: noise.get(name) for name in UpdateNoise._fields}))


def stack_batches(batches: Sequence[SequenceBatch]) -> dict[str, Tensor]:
    """Per-seed batches -> {field: (S, ...)}."""
    return {f.name: torch.stack([getattr(b, f.name) for b in batches]) for f in dataclasses.fields(SequenceBatch)}


def stack_noise(noises: Sequence[UpdateNoise]) -> dict[str, Tensor]:
    """Per-seed draws -> {kind: (S, ...)} for the kinds the mode draws."""
    return {name: torch.stack([getattr(n, name) for n in noises])
            for name in UpdateNoise._fields if getattr(noises[0], name) is not None}


def clip_grad_norm_per_seed(params: Sequence[Tensor], max_norm: float) -> Tensor:
    """`torch.nn.utils.clip_grad_norm_` applied to each seed's slice of stacked (S, ...) parameters
    on its own; returns the (S,) norms before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (S,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))
    return norms


class StackedAgents:
    """S agents of one config at one step, updated as one (see the module docstring). The agents
    keep their generators (each draws its own noise) and get their state back by `write_back()`."""

    def __init__(self, agents: Sequence[Agent]):
        agents = list(agents)
        if not agents:
            raise ValueError("StackedAgents needs at least one agent")
        lead = agents[0]
        for other in agents[1:]:
            if other.cfg != lead.cfg:
                raise ValueError("stacked agents must share one config (only their seeds may differ)")
            if other.step != lead.step or other.device != lead.device:
                raise ValueError(f"stacked agents must be at the same step on the same device; got steps "
                                 f"{[a.step for a in agents]} on {[str(a.device) for a in agents]}")
        self.agents, self.cfg, self.step = agents, lead.cfg, lead.step
        self._call = _SeedLosses(lead)
        self.params = {name: value.requires_grad_(True)
                       for name, value in self._stacked("model", "parameters").items()}  # each (S, ...)
        self.target_params = self._stacked("target", "parameters")
        self.buffers = {f"{prefix}.{name}": value for prefix in ("model", "target")
                        for name, value in self._stacked(prefix, "buffers").items()}
        self.param_names = list(self.params)
        self.model_names = [n for n in self.param_names if not n.startswith("policy.")]  # Agent.model_optim's order
        self.policy_names = [n for n in self.param_names if n.startswith("policy.")]
        self.model_optim = torch.optim.Adam([self.params[n] for n in self.model_names], lr=self.cfg.lr)
        self.pi_optim = torch.optim.Adam([self.params[n] for n in self.policy_names], lr=self.cfg.lr)
        self._stack_optimizer(self.model_optim, [a.model_optim for a in agents])
        self._stack_optimizer(self.pi_optim, [a.pi_optim for a in agents])
        out_dims = UpdateLosses(0, 0, 0, 0 if self.cfg.prioritized_replay else None, 0)  # priorities may be None
        self._vmapped_losses = torch.func.vmap(self._seed_losses, out_dims=out_dims, randomness="error")
        self._losses = self._vmapped_losses  # torch.compile(...) after compile()
        self.latents: Tensor | None = None     # (S, B, d) of the last update
        self.priorities: Tensor | None = None  # (S, B) of the last update (prioritised replay)

    def __len__(self) -> int:
        return len(self.agents)

    # --- stacking and unstacking ------------------------------------------------------------
    def _stacked(self, prefix: str, kind: str) -> dict[str, Tensor]:
        """{name: (S, ...)}: the agents' `prefix` module's ("model" / "target") parameters or buffers."""
        per_agent = [dict(getattr(getattr(agent, prefix), f"named_{kind}")()) for agent in self.agents]
        return {name: torch.stack([own[name].detach() for own in per_agent]) for name in per_agent[0]}

    @staticmethod
    def _stack_optimizer(stacked: torch.optim.Optimizer, per_seed: list[torch.optim.Optimizer]) -> None:
        states = [opt.state_dict()["state"] for opt in per_seed]
        if not states[0]:
            return  # fresh optimisers: nothing to carry over
        merged = {}
        for index, first in states[0].items():
            merged[index] = {key: value.clone() if key == "step" else torch.stack([s[index][key] for s in states])
                             for key, value in first.items()}
        stacked.load_state_dict({"state": merged, "param_groups": stacked.state_dict()["param_groups"]})

    @staticmethod
    def _optimizer_slice(stacked: torch.optim.Optimizer, own: torch.optim.Optimizer, seed: int) -> dict:
        state = {index: {key: value.clone() if key == "step" else value[seed].clone() for key, value in entry.items()}
                 for index, entry in stacked.state_dict()["state"].items()}
        return {"state": state, "param_groups": own.state_dict()["param_groups"]}

    @torch.no_grad()
    def write_back(self) -> None:
        """Every seed's weights, target weights, buffers, Adam state and step into its own Agent."""
        for seed, agent in enumerate(self.agents):
            for prefix, stacked in (("model", self.params), ("target", self.target_params)):
                own = dict(getattr(agent, prefix).named_parameters())
                for name, value in stacked.items():
                    own[name].copy_(value[seed])
            for prefix in ("model", "target"):
                for name, buf in getattr(agent, prefix).named_buffers():
                    buf.copy_(self.buffers[f"{prefix}.{name}"][seed])
            agent.model_optim.load_state_dict(self._optimizer_slice(self.model_optim, agent.model_optim, seed))
            agent.pi_optim.load_state_dict(self._optimizer_slice(self.pi_optim, agent.pi_optim, seed))
            agent.step = self.step

    # --- the update --------------------------------------------------------------------------
    def _seed_losses(self, params: dict[str, Tensor], target_params: dict[str, Tensor], buffers: dict[str, Tensor],
                     batch: dict[str, Tensor], noise: dict[str, Tensor]) -> UpdateLosses:
        """One seed's `Agent.losses` with that seed's tensors swapped in (vmapped over the seed axis)."""
        state = {**{f"model.{n}": v for n, v in params.items()},
                 **{f"target.{n}": v for n, v in target_params.items()}, **buffers}
        return torch.func.functional_call(self._call, state, (batch, noise))

    def compile(self, **compile_kwargs) -> None:
        """Run the vmapped loss computation of all seeds through `torch.compile` as one graph
        (backward included, via AOTAutograd), as `Agent.compile` does for one seed."""
        # static shapes: vmap's batched tensors do not take symbolic sizes, which dynamo would try when
        # the same vmap wrapper meets a second shape in one process (another mode or batch size)
        self._losses = torch.compile(self._vmapped_losses, fullgraph=True, **{"dynamic": False, **compile_kwargs})

    def update(self, batches: Sequence[SequenceBatch]) -> dict[str, Tensor]:
        """One update of every seed on its own batch; metrics as (S,) tensors (no host syncs)."""
        if len(batches) != len(self.agents):
            raise ValueError(f"{len(batches)} batches for {len(self.agents)} stacked agents")
        cfg = self.cfg
        if cfg.policy_loss == "tdmpc":
            self.buffers["model.tdmpc_std"].fill_(self.agents[0].policy_noise_std(self.step))
        noise = stack_noise([a.draw_noise(*b.rewards.shape) for a, b in zip(self.agents, batches)])
        out = self._losses(self.params, self.target_params, self.buffers, stack_batches(batches), noise)

        self.model_optim.zero_grad(set_to_none=True)
        self.pi_optim.zero_grad(set_to_none=True)
        # summing over seeds keeps each seed's gradient its own (no weight is shared across seeds)
        (out.model_loss.sum() + out.policy_loss.sum()).backward()
        grad_norm = clip_grad_norm_per_seed([self.params[n] for n in self.model_names], cfg.grad_clip)
        clip_grad_norm_per_seed([self.params[n] for n in self.policy_names], cfg.grad_clip)
        self.model_optim.step()
        self.pi_optim.step()
        self.step += 1
        self.latents, self.priorities = out.latents, out.priorities
        if self.step % cfg.target_update_every == 0:
            names = self.param_names
            ema_update([self.target_params[n] for n in names], [self.params[n] for n in names], cfg.target_tau)
        return {**out.metrics, "grad_norm": grad_norm.detach()}
