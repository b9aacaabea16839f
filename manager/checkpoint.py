"""Checkpoint files: the training checkpoint (resume) and the exported Manager (intents elsewhere).

Both are plain dicts of tensors and primitives written with torch.save to a temp file and renamed
(atomic), and read with torch.load(..., weights_only=True): no pickled code is ever executed.

Exported Manager (`manager.pt`), everything needed to produce intents on another machine:
  format, format_version, code_version, step (training updates done; None in files written before
  it was recorded), env, obs_dim, act_dim, mode, k, latent_dim,
  config (the AgentConfig as a dict), obs_mean, obs_std (normalisation), model (weights),
  decoder (optional weights of the latent -> obs decoder).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from common.checkpoint import CheckpointError, load_checkpoint, save_atomic  # noqa: F401 (re-exported)
from common.run_dir import describe_unfinished
from manager.config import AgentConfig, MODES

MANAGER_FORMAT = "iql-td-mpc-manager"
FORMAT_VERSION = 1


def config_to_dict(cfg: AgentConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict[str, Any]) -> AgentConfig:
    cls = MODES[data["mode"]]
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def export_manager(path: str | os.PathLike, *, env: str, obs_dim: int, act_dim: int, cfg: AgentConfig,
                   obs_mean: torch.Tensor, obs_std: torch.Tensor, model_state: dict[str, torch.Tensor],
                   code_version: str, decoder_state: dict[str, torch.Tensor] | None = None,
                   step: int | None = None) -> Path:
    payload = {"format": MANAGER_FORMAT, "format_version": FORMAT_VERSION, "code_version": code_version,
               "step": None if step is None else int(step), "env": env, "obs_dim": int(obs_dim), "act_dim": int(act_dim), "mode": cfg.mode, "k": int(cfg.k),
               "latent_dim": int(cfg.latent_dim), "config": config_to_dict(cfg),
               "obs_mean": obs_mean.detach().cpu().float(), "obs_std": obs_std.detach().cpu().float(),
               "model": {k: v.detach().cpu() for k, v in model_state.items()},
               "decoder": None if decoder_state is None else {k: v.detach().cpu() for k, v in decoder_state.items()}}
    return save_atomic(payload, path)


def load_manager_file(path: str | os.PathLike, env: str | None = None, obs_dim: int | None = None,
                      map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read an exported Manager and refuse it when it was made for another env or obs size."""
    run_dir = Path(path).parent
    if not Path(path).is_file() and (run_dir / "config.yaml").is_file():  # a Manager run that has not exported yet
        raise CheckpointError(f"no {Path(path).name} in {run_dir} yet: that Manager run has not finished "
                              f"({describe_unfinished(run_dir)}); wait for it, or resume it with the command that "
                              f"started it (make manager ENV={env or '<env>'} SEED=<k>)")
    payload = load_checkpoint(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != MANAGER_FORMAT:
        raise CheckpointError(f"{path} is not an exported Manager (format {payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}); "
                              "use the manager.pt written by `make manager`")
    if payload["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {payload['format_version']}, this code reads up to "
                              f"{FORMAT_VERSION}: update the code")
    if env is not None and payload["env"] != env:
        raise CheckpointError(f"{path} is a Manager for {payload['env']}, not {env}: train one for {env} "
                              f"(make manager ENV={env}) or pass the right MANAGER=path")
    if obs_dim is not None and payload["obs_dim"] != obs_dim:
        raise CheckpointError(f"{path} expects observations of size {payload['obs_dim']}, the env gives "
                              f"{obs_dim}: it belongs to another task")
    return payload
