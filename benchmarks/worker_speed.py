"""Worker update speed, ours vs CORL's reference classes at equal sizes, measured side by side.

For each transition worker (bc, td3_bc, iql, awac, cql) both sides get the same random batches
(states of the augmented maze2d size: 4 + 10 intent dims, 2 actions, CORL's batch size 256) and
CORL's default hyper-parameters; ours is built by the worker file's own `build_algo`, CORL's by
the constructor calls of its train() (algorithms/offline/<algo>.py of a CORL checkout, imported
with stand-ins for d4rl, gym, wandb and pyrallis, which the update step never touches). The two
are timed in alternating rounds and the figure is the ratio of median updates/s (ours / CORL),
so drift of a shared machine cancels out. DT has no trainer class in CORL (its loop lives inside
train()), so it is not compared here.

    python benchmarks/worker_speed.py --corl /path/to/CORL [--device cpu|cuda] \
        [--out docs/results/worker_speed_cpu.json]

Without --corl only our updates/s are printed.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import write_json_atomic  # noqa: E402
from common.machine import device_description  # noqa: E402
from corl import any_percent_bc, awac, cql, iql, td3_bc  # noqa: E402
from tasks.datasets import code_version  # noqa: E402

STATE_DIM, ACTION_DIM, BATCH = 14, 2, 256  # maze2d (4) + the Manager's intent (10); CORL's batch size
OURS = {"bc": (any_percent_bc, any_percent_bc.BCConfig), "td3_bc": (td3_bc, td3_bc.TD3BCConfig),
        "iql": (iql, iql.IQLConfig), "awac": (awac, awac.AWACConfig), "cql": (cql, cql.CQLConfig)}
CORL_FILES = {"bc": "any_percent_bc", "td3_bc": "td3_bc", "iql": "iql", "awac": "awac", "cql": "cql"}


def _stand_in(name: str) -> types.ModuleType:
    """A module whose every attribute is a do-nothing decorator factory (enough for import time)."""
    module = types.ModuleType(name)
    module.__getattr__ = lambda attr: (lambda *a, **k: (lambda f: f))  # type: ignore[attr-defined]
    return module


def load_corl_module(corl_root: Path, algo: str) -> types.ModuleType:
    path = corl_root / "algorithms" / "offline" / f"{CORL_FILES[algo]}.py"
    if not path.is_file():
        raise SystemExit(f"error: {path} not found; pass --corl the root of a CORL checkout "
                         "(git clone https://github.com/corl-team/CORL)")
    for name in ("d4rl", "gym", "wandb", "pyrallis"):
        sys.modules.setdefault(name, _stand_in(name))
    spec = importlib.util.spec_from_file_location(f"corl_reference_{algo}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_corl(m: types.ModuleType, algo: str, device: str):
    """CORL's trainer with its TrainConfig defaults, as its train() builds it; returns (trainer, step)."""
    c = m.TrainConfig()
    adam = torch.optim.Adam
    if algo == "bc":
        actor = m.Actor(STATE_DIM, ACTION_DIM, 1.0).to(device)
        t = m.BC(max_action=1.0, actor=actor, actor_optimizer=adam(actor.parameters(), lr=3e-4),
                 discount=c.discount, device=device)
        return t, t.train
    if algo == "td3_bc":
        actor = m.Actor(STATE_DIM, ACTION_DIM, 1.0).to(device)
        q1, q2 = (m.Critic(STATE_DIM, ACTION_DIM).to(device) for _ in range(2))
        t = m.TD3_BC(max_action=1.0, actor=actor, actor_optimizer=adam(actor.parameters(), lr=3e-4),
                     critic_1=q1, critic_1_optimizer=adam(q1.parameters(), lr=3e-4), critic_2=q2,
                     critic_2_optimizer=adam(q2.parameters(), lr=3e-4), discount=c.discount, tau=c.tau,
                     device=device, policy_noise=c.policy_noise, noise_clip=c.noise_clip,
                     policy_freq=c.policy_freq, alpha=c.alpha)
        return t, t.train
    if algo == "iql":
        q, v = m.TwinQ(STATE_DIM, ACTION_DIM).to(device), m.ValueFunction(STATE_DIM).to(device)
        actor = m.GaussianPolicy(STATE_DIM, ACTION_DIM, 1.0, dropout=c.actor_dropout).to(device)
        t = m.ImplicitQLearning(max_action=1.0, actor=actor, actor_optimizer=adam(actor.parameters(), lr=c.actor_lr),
                                q_network=q, q_optimizer=adam(q.parameters(), lr=c.qf_lr), v_network=v,
                                v_optimizer=adam(v.parameters(), lr=c.vf_lr), discount=c.discount, tau=c.tau,
                                device=device, beta=c.beta, iql_tau=c.iql_tau, max_steps=c.max_timesteps)
        return t, t.train
    if algo == "awac":
        sizes = {"state_dim": STATE_DIM, "action_dim": ACTION_DIM, "hidden_dim": c.hidden_dim}
        actor, q1, q2 = m.Actor(**sizes).to(device), m.Critic(**sizes).to(device), m.Critic(**sizes).to(device)
        t = m.AdvantageWeightedActorCritic(
            actor=actor, actor_optimizer=adam(actor.parameters(), lr=c.learning_rate), critic_1=q1,
            critic_1_optimizer=adam(q1.parameters(), lr=c.learning_rate), critic_2=q2,
            critic_2_optimizer=adam(q2.parameters(), lr=c.learning_rate), gamma=c.gamma, tau=c.tau,
            awac_lambda=c.awac_lambda)
        return t, t.update
    if algo == "cql":
        q1 = m.FullyConnectedQFunction(STATE_DIM, ACTION_DIM, c.orthogonal_init, c.q_n_hidden_layers).to(device)
        q2 = m.FullyConnectedQFunction(STATE_DIM, ACTION_DIM, c.orthogonal_init).to(device)
        actor = m.TanhGaussianPolicy(STATE_DIM, ACTION_DIM, 1.0, log_std_multiplier=c.policy_log_std_multiplier,
                                     orthogonal_init=c.orthogonal_init).to(device)
        t = m.ContinuousCQL(
            critic_1=q1, critic_2=q2, critic_1_optimizer=adam(q1.parameters(), c.qf_lr),
            critic_2_optimizer=adam(q2.parameters(), c.qf_lr), actor=actor,
            actor_optimizer=adam(actor.parameters(), c.policy_lr), discount=c.discount,
            soft_target_update_rate=c.soft_target_update_rate, device=device, target_entropy=-float(ACTION_DIM),
            alpha_multiplier=c.alpha_multiplier, use_automatic_entropy_tuning=c.use_automatic_entropy_tuning,
            backup_entropy=c.backup_entropy, policy_lr=c.policy_lr, qf_lr=c.qf_lr, bc_steps=c.bc_steps,
            target_update_period=c.target_update_period, cql_n_actions=c.cql_n_actions,
            cql_importance_sample=c.cql_importance_sample, cql_lagrange=c.cql_lagrange,
            cql_target_action_gap=c.cql_target_action_gap, cql_temp=c.cql_temp, cql_alpha=c.cql_alpha,
            cql_max_target_backup=c.cql_max_target_backup, cql_clip_diff_min=c.cql_clip_diff_min,
            cql_clip_diff_max=c.cql_clip_diff_max)
        return t, t.train
    raise ValueError(algo)


def build_ours(algo: str, device: str) -> Callable:
    module, config_cls = OURS[algo]
    cfg = config_cls(env="maze2d-umaze-v1", steps=1_000_000)  # steps: the length of IQL's lr schedule
    return module.build_algo(cfg, STATE_DIM, ACTION_DIM, 1.0, device).update


def random_batches(n: int, device: str, seed: int = 0) -> list[list[torch.Tensor]]:
    """[states, actions, rewards, next_states, dones] as both sides' buffers return them."""
    g = torch.Generator().manual_seed(seed)
    make = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return [[t.to(device) for t in (make(BATCH, STATE_DIM), make(BATCH, ACTION_DIM).clamp(-0.99, 0.99),
                                     make(BATCH, 1), make(BATCH, STATE_DIM),
                                     (torch.rand(BATCH, 1, generator=g) < 0.01).float())] for _ in range(n)]


def timed(step: Callable, batches, device: str, updates: int) -> float:
    """updates/s of `updates` steps over the prepared batches, synchronised at the end only."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(updates):
        step(batches[i % len(batches)])
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return updates / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corl", type=Path, default=None, help="root of a CORL checkout (the reference)")
    parser.add_argument("--algos", default="bc,td3_bc,iql,awac,cql", help="comma-separated workers")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--updates", type=int, default=200, help="updates per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median taken)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    batches = random_batches(16, args.device)
    results = {}
    for algo in args.algos.split(","):
        ours = build_ours(algo, args.device)
        corl = build_corl(load_corl_module(args.corl, algo), algo, args.device)[1] if args.corl else None
        for step in (ours, corl):  # warm-up
            if step is not None:
                timed(step, batches, args.device, 20)
        ours_rates, corl_rates = [], []
        for _ in range(args.rounds):
            ours_rates.append(timed(ours, batches, args.device, args.updates))
            if corl is not None:
                corl_rates.append(timed(corl, batches, args.device, args.updates))
        row = {"ours_updates_per_s": round(statistics.median(ours_rates), 1)}
        if corl_rates:
            row["corl_updates_per_s"] = round(statistics.median(corl_rates), 1)
            row["ratio_ours_over_corl"] = round(float(np.median(np.array(ours_rates) / np.array(corl_rates))), 3)
        results[algo] = row
        print(f"{algo:7s} " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if args.out:
        write_json_atomic(args.out, {
            "what": "worker update speed, ours vs CORL at equal sizes (ratio of alternating rounds)",
            "device": args.device, "device_name": device_description(args.device), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "state_dim": STATE_DIM, "action_dim": ACTION_DIM,
            "batch_size": BATCH, "updates_per_round": args.updates, "rounds": args.rounds,
            "code_version": code_version(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
