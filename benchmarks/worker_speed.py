"""Worker update speed, ours vs CORL's reference classes at equal sizes, measured side by side.

For each transition worker (bc, td3_bc, iql, awac, cql) both sides get the same random batches
(states of the augmented maze2d size: 4 + 10 intent dims, 2 actions, CORL's batch size 256) and
CORL's default hyper-parameters; ours is built by the worker file's own `build_algo`, CORL's by
the constructor calls of its train() (algorithms/offline/<algo>.py of a CORL checkout, imported
with stand-ins for d4rl, gym, wandb and pyrallis, which the update step never touches). The two
are timed in alternating rounds and the figure is the ratio of median updates/s (ours / CORL),
so drift of a shared machine cancels out. IDQL (not in CORL) is timed alone, at its own batch of 512.

DT has no trainer class in CORL: its update is the body of the loop in train(). The CORL side is
CORL's DecisionTransformer (its TrainConfig defaults) driven by that body as CORL writes it
(AdamW, warmup LambdaLR, masked MSE, grad-norm clip, and the loss.item() its per-step log reads);
ours is corl/dt.py's build_algo(...).update. Both get the same random (B, 20)-step sequences, B
= CORL's maze2d preset batch 4096 on a GPU, its generic default 64 on a CPU (--dt-batch).

    python benchmarks/worker_speed.py --corl /path/to/CORL [--device cpu|cuda] \
        [--out docs/results/worker_speed_cpu.json]
    python benchmarks/worker_speed.py --algos bc,td3_bc --compile [--compile-mode reduce-overhead]

Without --corl only our updates/s are printed. With --compile (corl/shared/compiled.py) our
update also runs compiled, timed in the same alternating rounds as the
eager one (compiled_over_eager), with its one-off compile time (compile_s) and how far its weights
are from the eager one's after the same 5 updates on the same batches and draws
(compiled_max_param_gap: float rounding when the compiled update computes the eager one; DT's and
IDQL's are measured with their dropouts off, since compiled dropout draws its own masks).
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
from corl import any_percent_bc, awac, cql, dt, idql, iql, td3_bc  # noqa: E402
from tasks.datasets import code_version  # noqa: E402

STATE_DIM, ACTION_DIM, BATCH = 14, 2, 256  # maze2d (4) + the Manager's intent (10); CORL's batch size
OURS = {"bc": (any_percent_bc, any_percent_bc.BCConfig), "td3_bc": (td3_bc, td3_bc.TD3BCConfig),
        "iql": (iql, iql.IQLConfig), "awac": (awac, awac.AWACConfig), "cql": (cql, cql.CQLConfig),
        "idql": (idql, idql.IDQLConfig)}  # IDQL is not in CORL: ours only, at its own batch (512)
CORL_FILES = {"bc": "any_percent_bc", "td3_bc": "td3_bc", "iql": "iql", "awac": "awac", "cql": "cql", "dt": "dt"}
DT_EPISODE_LEN = 1000  # CORL's TrainConfig.episode_len (rows of the timestep embedding - seq_len)


def _stand_in(name: str) -> types.ModuleType:
    """A module whose every public attribute is a do-nothing decorator factory (enough for import
    time); dunder lookups fail as usual (inspect and torch.compile walk sys.modules' __file__s)."""
    module = types.ModuleType(name)

    def attribute(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return lambda *a, **k: (lambda f: f)

    module.__getattr__ = attribute  # type: ignore[attr-defined]
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


def build_corl_dt(m: types.ModuleType, device: str) -> Callable:
    """CORL's DecisionTransformer with its TrainConfig defaults, updated by the body of its train() loop."""
    c = m.TrainConfig()
    model = m.DecisionTransformer(
        state_dim=STATE_DIM, action_dim=ACTION_DIM, embedding_dim=c.embedding_dim, seq_len=c.seq_len,
        episode_len=c.episode_len, num_layers=c.num_layers, num_heads=c.num_heads,
        attention_dropout=c.attention_dropout, residual_dropout=c.residual_dropout,
        embedding_dropout=c.embedding_dropout, max_action=c.max_action).to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay, betas=c.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optim, lambda steps: min((steps + 1) / c.warmup_steps, 1))

    def step(batch: list[torch.Tensor]) -> dict[str, float]:
        states, actions, returns, time_steps, mask = batch
        predicted = model(states=states, actions=actions, returns_to_go=returns, time_steps=time_steps,
                          padding_mask=~mask.to(torch.bool))
        loss = (torch.nn.functional.mse_loss(predicted, actions.detach(), reduction="none") * mask.unsqueeze(-1)).mean()
        optim.zero_grad()
        loss.backward()
        if c.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.clip_grad)
        optim.step()
        scheduler.step()
        return {"train_loss": loss.item(), "learning_rate": scheduler.get_last_lr()[0]}  # CORL logs both every step

    return step


NO_DROPOUT = {"dt": {"attention_dropout": 0.0, "residual_dropout": 0.0, "embedding_dropout": 0.0},
              "idql": {"actor_dropout": 0.0}}  # the workers whose defaults have dropout


def build_ours(algo: str, device: str, dropout: bool = True):
    """Our worker at the benchmark's sizes with its defaults (dropout=False: DT's and IDQL's off)."""
    off = {} if dropout else NO_DROPOUT.get(algo, {})
    if algo == "dt":
        return dt.build_algo(dt.DTConfig(**off), STATE_DIM, ACTION_DIM, DT_EPISODE_LEN, device)
    module, config_cls = OURS[algo]
    cfg = config_cls(env="maze2d-umaze-v1", steps=1_000_000, **off)  # steps: the length of IQL's lr schedule
    return module.build_algo(cfg, STATE_DIM, ACTION_DIM, 1.0, device)


def float_state(algo_state: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every floating-point tensor of a worker's (nested) state dict: weights and optimiser moments."""
    out = {}
    for key, value in algo_state.items():
        if isinstance(value, dict):
            out.update(float_state(value, f"{prefix}{key}."))
        elif torch.is_tensor(value) and value.is_floating_point():
            out[f"{prefix}{key}"] = value
    return out


def compiled_gap(algo: str, data: list, device: str, compile_options: dict, updates: int = 5) -> float:
    """Largest absolute difference between the weights (and Adam moments) of an eager and a compiled
    worker after the same `updates` updates from the same weights on the same batches and draws."""
    pair = []
    for compiled in (False, True):
        torch.manual_seed(0)
        worker = build_ours(algo, device, dropout=False)
        if compiled:
            worker.compile(**compile_options)
        for i in range(updates):
            torch.manual_seed(i + 1)
            worker.update(data[i % len(data)])
        pair.append(float_state(worker.state_dict()))
    eager, compiled_state = pair
    return max(float((eager[k] - compiled_state[k]).abs().max()) for k in eager)


def random_batches(n: int, device: str, seed: int = 0, batch: int = BATCH) -> list[list[torch.Tensor]]:
    """[states, actions, rewards, next_states, dones] as both sides' buffers return them."""
    g = torch.Generator().manual_seed(seed)
    make = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    return [[t.to(device) for t in (make(batch, STATE_DIM), make(batch, ACTION_DIM).clamp(-0.99, 0.99),
                                     make(batch, 1), make(batch, STATE_DIM),
                                     (torch.rand(batch, 1, generator=g) < 0.01).float())] for _ in range(n)]


def random_sequences(n: int, batch: int, device: str, seq_len: int = 20, seed: int = 0) -> list[list[torch.Tensor]]:
    """DT batches [states, actions, returns_to_go, time_steps, mask] as both sides' samplers return
    them; a quarter of the sequences run past their trajectory's end (mask 0 on the tail)."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        valid = torch.where(torch.rand(batch, 1, generator=g) < 0.25,
                            torch.randint(1, seq_len + 1, (batch, 1), generator=g), torch.full((batch, 1), seq_len))
        mask = (torch.arange(seq_len)[None] < valid).float()  # (B, K)
        start = torch.randint(0, DT_EPISODE_LEN - seq_len, (batch, 1), generator=g)
        parts = (torch.randn(batch, seq_len, STATE_DIM, generator=g) * mask[..., None],
                 (torch.rand(batch, seq_len, ACTION_DIM, generator=g) * 2 - 1) * mask[..., None],
                 torch.randn(batch, seq_len, generator=g) * mask, start + torch.arange(seq_len)[None], mask)
        batches.append([t.to(device) for t in parts])
    return batches


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


def workload(algo: str, args: argparse.Namespace, batches: list) -> tuple[list, int, dict]:
    """(batches, updates per round, sizes to report) of one worker: the shared transition batches
    for CORL's five, 20-step sequences for DT, IDQL's own batch of 512."""
    if algo == "dt":
        on_gpu = args.device.startswith("cuda")
        batch = args.dt_batch or (4096 if on_gpu else 64)
        updates = args.dt_updates or (args.updates if on_gpu else 10)
        return random_sequences(4, batch, args.device), updates, {"batch_size": batch, "seq_len": 20,
                                                                   "updates_per_round": updates}
    if algo == "idql":
        batch = idql.IDQLConfig().batch_size
        return random_batches(16, args.device, batch=batch), args.updates, {
            "batch_size": batch, "reference": "none (IDQL is not in CORL)"}
    return batches, args.updates, {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corl", type=Path, default=None, help="root of a CORL checkout (the reference)")
    parser.add_argument("--algos", default="bc,td3_bc,iql,awac,cql,dt,idql", help="comma-separated workers")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--updates", type=int, default=200, help="updates per timed round")
    parser.add_argument("--dt-batch", type=int, default=None,
                        help="DT's batch of sequences (default: 4096, CORL's maze2d preset, on a GPU; 64 on a CPU)")
    parser.add_argument("--dt-updates", type=int, default=None,
                        help="DT updates per timed round (default: --updates on a GPU, 10 on a CPU)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median taken)")
    parser.add_argument("--compile", dest="compile_backend", nargs="?", const="inductor", default=None,
                        help="also time our update under torch.compile (default backend inductor), side by side")
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile's mode of the compiled update, e.g. reduce-overhead (CUDA graphs)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if args.compile_mode and not args.compile_backend:
        parser.error("--compile-mode needs --compile")
    compile_options = None
    if args.compile_backend:
        compile_options = {"backend": args.compile_backend, **({"mode": args.compile_mode} if args.compile_mode else {})}
    torch.manual_seed(0)
    batches = random_batches(16, args.device)
    results = {}
    for algo in args.algos.split(","):
        ours = build_ours(algo, args.device).update
        compiled = None
        if compile_options:
            compiled_worker = build_ours(algo, args.device)
            compiled_worker.compile(**compile_options)
            compiled = compiled_worker.update
        corl = None
        if args.corl and algo in CORL_FILES:
            module = load_corl_module(args.corl, algo)
            corl = build_corl_dt(module, args.device) if algo == "dt" else build_corl(module, algo, args.device)[1]
        data, updates, sizes = workload(algo, args, batches)
        compile_s = None
        for name, step in (("ours", ours), ("compiled", compiled), ("corl", corl)):  # warm-up (compiles)
            if step is not None:
                start = time.perf_counter()
                timed(step, data, args.device, max(2, updates // 10))
                if name == "compiled":
                    compile_s = time.perf_counter() - start
        ours_rates, compiled_rates, corl_rates = [], [], []
        for _ in range(args.rounds):
            ours_rates.append(timed(ours, data, args.device, updates))
            if compiled is not None:
                compiled_rates.append(timed(compiled, data, args.device, updates))
            if corl is not None:
                corl_rates.append(timed(corl, data, args.device, updates))
        digits = 2 if algo == "dt" else 1
        row = {"ours_updates_per_s": round(statistics.median(ours_rates), digits)}
        if compiled_rates:
            row["compiled_updates_per_s"] = round(statistics.median(compiled_rates), digits)
            row["compiled_over_eager"] = round(float(np.median(np.array(compiled_rates) / np.array(ours_rates))), 3)
            row["compile_s"] = round(compile_s, 1)
            row["compiled_max_param_gap"] = float(f"{compiled_gap(algo, data, args.device, compile_options):.3g}")
        if corl_rates:
            row["corl_updates_per_s"] = round(statistics.median(corl_rates), digits)
            row["ratio_ours_over_corl"] = round(float(np.median(np.array(ours_rates) / np.array(corl_rates))), 3)
        row.update(sizes)
        results[algo] = row
        print(f"{algo:7s} " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if args.out:
        write_json_atomic(args.out, {
            "what": "worker update speed, ours vs CORL at equal sizes (ratio of alternating rounds)",
            "device": args.device, "device_name": device_description(args.device), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "state_dim": STATE_DIM, "action_dim": ACTION_DIM,
            "batch_size": BATCH, "updates_per_round": args.updates, "rounds": args.rounds,
            "compile_backend": args.compile_backend, "compile_mode": args.compile_mode,
            "code_version": code_version(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
