"""Configs of the three modes; defaults are the paper's Tables 6, 7 and 8.

- `IQLTDMPCConfig`: the flat IQL-TD-MPC agent (Table 6 right column + Table 7).
- `TDMPCConfig`: vanilla TD-MPC trained offline (Table 6 left column).
- `ManagerConfig`: IQL-TD-MPC as a temporally abstract Manager (Table 8 on top of Tables 6-7).

Settings that depend on the task (reward scale, critic loss on antmaze) are resolved by
`resolve_for_env`; compute profiles (paper / quick / smoke) by `apply_profile`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from common.cli import (OPEN_UNIT_RANGE, POSITIVE, PROBABILITY_BELOW_ONE, UNIT_RANGE, check_minimums,
                        check_ranges)
from common.cli import config_field as field


FLAT_GAMMA = 0.99  # Tables 6-8: discount per environment step


@dataclass
class AgentConfig:
    """Fields shared by every mode (TD-MPC's world model and training loop)."""

    mode: str = field("iql_td_mpc", "which agent: iql_td_mpc | td_mpc | manager")
    # architecture (Table 6: MLP hidden 512, encoder hidden 256)
    latent_dim: int = field(50, "latent dimension d")
    enc_dim: int = field(256, "encoder hidden size")
    mlp_dim: int = field(512, "hidden size of dynamics, reward, Q, V, policy (and inverse dynamics) MLPs")
    # optimisation
    lr: float = field(3e-4, "Adam learning rate (model and policy)")
    batch_size: int = field(256, "sub-trajectories per update")
    horizon: int = field(2, "planning horizon H = sub-trajectory length in (abstract) steps")
    gamma: float = field(0.99, "discount per (abstract) step")
    rho: float = field(0.5, "temporal coefficient: step t of a sub-trajectory is weighted rho^t")
    grad_clip: float = field(10.0, "gradient-norm clipping threshold")
    consistency_coef: float = field(2.0, "c_f, latent consistency loss coefficient")
    reward_coef: float = field(0.5, "c_R, reward loss coefficient")
    value_coef: float = field(0.1, "c_Q, critic loss coefficient")
    target_tau: float = field(0.01, "target-network momentum: theta- <- (1 - tau) theta- + tau theta")
    target_update_every: int = field(2, "update the target network every this many updates")
    loss_clamp: float = field(1e4, "per-sample clamp on each model loss term (as TD-MPC)")
    bootstrap: str = field("mean", "TD-target action at s': 'mean' (E[pi]) or 'sample' (TD-MPC)")
    critic_loss: str = field("td", "'td': r + gamma min Q-(z', pi(z')); 'iql': r + gamma V(z') (antmaze-{medium,large,ultra})")
    prioritized_replay: bool = field(False, "prioritised experience replay (TD-MPC's default; off for IQL-TD-MPC)")
    per_alpha: float = field(0.6, "prioritised replay: priority exponent alpha (TD-MPC)")
    per_beta: float = field(0.4, "prioritised replay: importance-weight exponent beta (TD-MPC)")
    # IQL (Table 7)
    iql_tau: float = field(0.9, "expectile tau of the value loss")
    iql_beta: float = field(3.0, "inverse temperature beta of the advantage weights")
    adv_weight_max: float = field(100.0, "exponential advantage threshold (weights clipped to it)")
    v_coef: float = field(0.1, "coefficient of the IQL value loss L_V in the model loss")
    log_std_min: float = field(-5.0, "stochastic policy: lower bound of log sigma")
    log_std_max: float = field(2.0, "stochastic policy: upper bound of log sigma")
    action_clip: float = field(0.99, "dataset actions clipped to +-this before log pi (avoids infinite loss)")
    entropy_coef: float = field(0.1, "weight of log pi(a~|z), a~ ~ pi: the entropy bonus")
    policy_loss: str = field("iql", "'iql' (advantage-weighted log-likelihood) or 'tdmpc' (-min Q(z, pi(z)))")
    # TD-MPC's exploration noise (only for policy_loss='tdmpc')
    std_init: float = field(0.5, "TD-MPC policy noise std at step 0")
    std_final: float = field(0.05, "TD-MPC policy noise std after std_decay_steps (also MPPI min std)")
    std_decay_steps: int = field(25_000, "steps of the linear noise-std decay")
    # planning (MPC in latent space)
    num_pi_samples: int = field(512, "n_pi: action sequences sampled from the policy")
    num_random_samples: int = field(0, "n_r: random sequences (MPPI); 0 = IQL-TD-MPC's policy-only planning")
    num_elites: int = field(64, "n_e: elite sequences")
    mppi_iterations: int = field(6, "MPPI refinement iterations (only when num_random_samples > 0)")
    mppi_momentum: float = field(0.1, "MPPI momentum coefficient")
    temperature: float = field(0.5, "elite choice p_i ~ exp(temperature (G_i - max G))")
    # Manager only
    k: int = field(1, "latent timescale coarseness: environment steps per (abstract) step")
    reward_scale: float = field(1.0, "rewards (summed over k steps) are multiplied by this")
    num_categoricals: int = field(0, "L: categorical variables of a discrete Manager action (0: continuous)")
    num_classes: int = field(0, "C: classes per categorical")


@dataclass
class IQLTDMPCConfig(AgentConfig):
    """Flat IQL-TD-MPC (paper Tables 6 and 7)."""


@dataclass
class TDMPCConfig(AgentConfig):
    """Vanilla TD-MPC trained offline (paper Table 6, left column)."""

    mode: str = field("td_mpc", "which agent: iql_td_mpc | td_mpc | manager")
    horizon: int = field(5, "planning horizon H")
    lr: float = field(1e-3, "Adam learning rate")
    batch_size: int = field(512, "sub-trajectories per update")
    bootstrap: str = field("sample", "TD-target action at s': a policy sample (TD-MPC)")
    prioritized_replay: bool = field(True, "prioritised experience replay (TD-MPC's default)")
    policy_loss: str = field("tdmpc", "TD-MPC's policy loss -min Q(z, pi(z))")
    num_pi_samples: int = field(25, "n_pi: policy sequences")
    num_random_samples: int = field(487, "n_r: random sequences refined by MPPI")


@dataclass
class ManagerConfig(AgentConfig):
    """IQL-TD-MPC as a Manager (paper Table 8, section 4, appendix A)."""

    mode: str = field("manager", "which agent: iql_td_mpc | td_mpc | manager")
    latent_dim: int = field(10, "latent dimension d (= intent size)")
    horizon: int = field(4, "planning horizon H in manager steps (k H environment steps)")
    k: int = field(8, "latent timescale coarseness: environment steps per manager step")
    gamma: float = field(FLAT_GAMMA ** 8, "discount per manager step: the flat 0.99 per environment step compounded "
                         "over k, 0.99^k (SMDP discounting; docs/manager.md); resolve_for_env follows --set k")
    reward_scale: float = field(0.1, "0.1 for maze2d and locomotion, 1.0 for antmaze (resolve_for_env)")
    iql_beta: float = field(30.0, "3 / reward_scale (resolve_for_env)")
    num_categoricals: int = field(8, "L: categorical variables of a Manager action")
    num_classes: int = field(10, "C: classes per categorical")


MODES: dict[str, type[AgentConfig]] = {"iql_td_mpc": IQLTDMPCConfig, "td_mpc": TDMPCConfig, "manager": ManagerConfig}

# Profiles: step counts and the compute knobs a CPU can afford. `paper` changes nothing else.
PROFILES: dict[str, dict[str, Any]] = {
    "paper": {},
    "quick": {"enc_dim": 128, "mlp_dim": 256, "num_pi_samples": 64, "num_elites": 16},
    "smoke": {"enc_dim": 32, "mlp_dim": 32, "batch_size": 32, "num_pi_samples": 16, "num_elites": 4},
}
# Training steps per profile: (manager, flat); and evaluation episodes for flat agents.
PROFILE_STEPS = {"paper": (300_000, 1_000_000), "quick": (20_000, 20_000), "smoke": (200, 200)}
PROFILE_EVAL_EPISODES = {"paper": 100, "quick": 10, "smoke": 2}


def make_config(mode: str, **overrides: Any) -> AgentConfig:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return dataclasses.replace(MODES[mode](), **overrides)


def resolve_for_env(cfg: AgentConfig, env: str, explicit: frozenset[str] = frozenset()) -> AgentConfig:
    """Task-dependent settings of Tables 7-8, unless the user set them (`explicit` names)."""
    changes: dict[str, Any] = {}
    if cfg.mode == "manager" and "gamma" not in explicit:
        changes["gamma"] = FLAT_GAMMA ** cfg.k  # one manager step spans k environment steps
    is_antmaze = env.startswith("antmaze")
    if cfg.mode == "manager" and "reward_scale" not in explicit:
        changes["reward_scale"] = 1.0 if is_antmaze else 0.1
    if cfg.mode == "manager" and "iql_beta" not in explicit:
        changes["iql_beta"] = 3.0 / changes.get("reward_scale", cfg.reward_scale)
    if cfg.mode != "td_mpc" and "critic_loss" not in explicit and is_antmaze and any(
            f"antmaze-{size}" in env for size in ("medium", "large", "ultra")):
        changes["critic_loss"] = "iql"
    return dataclasses.replace(cfg, **changes)


def apply_profile(cfg: AgentConfig, profile: str, explicit: frozenset[str] = frozenset()) -> AgentConfig:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    changes = {k: v for k, v in PROFILES[profile].items() if k not in explicit}
    if cfg.mode == "td_mpc" and profile != "paper" and "num_random_samples" not in explicit:
        changes["num_random_samples"] = max(changes.get("num_pi_samples", cfg.num_pi_samples) * 2, 8)
        changes["num_pi_samples"] = max(changes.get("num_pi_samples", cfg.num_pi_samples) // 8, 2)
    return dataclasses.replace(cfg, **changes)


# the least value of the agent's sizes and counts (set with --set NAME=VALUE)
AGENT_MINIMUMS = {"latent_dim": 1, "enc_dim": 1, "mlp_dim": 1, "batch_size": 1, "horizon": 1, "k": 1,
                  "num_pi_samples": 0, "num_random_samples": 0, "num_elites": 1, "mppi_iterations": 1,
                  "target_update_every": 1, "std_decay_steps": 0, "num_categoricals": 0, "num_classes": 0}


# the coefficients' ranges the paper's equations need (a typo'd 9.9 for a discount of 0.99 would train)
AGENT_RANGES = {"gamma": UNIT_RANGE, "rho": UNIT_RANGE, "target_tau": UNIT_RANGE, "iql_tau": OPEN_UNIT_RANGE,
                "lr": POSITIVE, "temperature": POSITIVE, "mppi_momentum": PROBABILITY_BELOW_ONE}


def validate(cfg: AgentConfig) -> None:
    check_minimums(cfg, AGENT_MINIMUMS, flag=lambda name: f"{name} (--set {name}=N)")
    check_ranges(cfg, AGENT_RANGES, flag=lambda name: f"{name} (--set {name}=...)")
    checks = [
        (cfg.mode in MODES, f"mode must be one of {list(MODES)}"),
        (cfg.bootstrap in ("mean", "sample"), "bootstrap must be 'mean' or 'sample'"),
        (cfg.critic_loss in ("td", "iql"), "critic_loss must be 'td' or 'iql'"),
        (cfg.policy_loss in ("iql", "tdmpc"), "policy_loss must be 'iql' or 'tdmpc'"),
        (cfg.num_elites <= cfg.num_pi_samples + cfg.num_random_samples, "num_elites exceeds the samples"),
        ((cfg.mode == "manager") == (cfg.num_categoricals > 0), "discrete actions are for the manager only"),
        (cfg.num_categoricals == 0 or cfg.num_classes >= 2, "a discrete action needs num_classes >= 2"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"invalid {type(cfg).__name__}: {message}")
