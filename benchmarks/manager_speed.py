"""Speed of the world-model agents behind docs/manager.md: updates/s and planning time per env step.

For each mode (manager, iql_td_mpc, td_mpc) at the paper's sizes and the quick profile's:
  - updates/s: Agent.update on batches from SequenceSampler (a generated maze2d-umaze dataset),
    after warm-up, synchronised at the end of the timed window only;
  - planning ms per env step for 1 and 100 environments: one batched plan from encoded
    observations (what LatentPlanner does at every evaluation step).

  - with --compile: the same updates through `Agent.compile()` (torch.compile of the loss
    computation) and the same plans through `LatentPlanner.compile()`, timed in turns with the
    eager ones; the update's compile time is reported apart, and how far the compiled agent's
    weights are from the eager one's after the same 5 warm-up updates (compiled_max_param_gap:
    float rounding, ~1e-6, when the compiled update computes what the eager one does).
  - with --stacked-seeds S: S seeds trained as one `StackedAgents` (parameters on a leading seed
    axis, one vmapped update) against the same S agents updated one after the other, in turns;
    reported as seed-updates per second.

    python benchmarks/manager_speed.py [--device cpu|cuda] [--out docs/results/manager_speed_cpu.json]
    python benchmarks/manager_speed.py --profiles quick --compile --no-plan --out docs/results/manager_compile_cpu.json
    python benchmarks/manager_speed.py --device cuda --profiles paper --compile --compile-mode reduce-overhead --no-plan
    python benchmarks/manager_speed.py --stacked-seeds 5 --no-plan --out docs/results/manager_stacked_cpu.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import write_json_atomic  # noqa: E402
from manager.agent import Agent  # noqa: E402
from manager.config import apply_profile, make_config, resolve_for_env  # noqa: E402
from manager.data import SequenceSampler  # noqa: E402
from manager.inference import LatentPlanner  # noqa: E402
from manager.stacked import StackedAgents  # noqa: E402
from tasks import generate_dataset, get_task, read_dataset  # noqa: E402
from tasks.datasets import code_version  # noqa: E402

ENV = "maze2d-umaze-v1"
ROUNDS = 3  # alternating timed windows per agent


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def benchmark_data(steps: int) -> dict:
    """A maze2d-umaze dataset of `steps` steps generated with D4RL's procedure (seed 0), read into memory."""
    with tempfile.TemporaryDirectory() as tmp:
        path = generate_dataset(ENV, out=Path(tmp) / "umaze.hdf5", steps=steps, seed=0, show_progress=False)
        return read_dataset(path, get_task(ENV))


def benchmark_config(mode: str, profile: str):
    """The agent config of a mode at a profile's sizes, resolved for the benchmark's task."""
    return resolve_for_env(apply_profile(make_config(mode), profile), ENV)


def agent_and_sampler(data, cfg, device: torch.device, seed: int) -> tuple[Agent, SequenceSampler]:
    """One agent (maze2d: 4 observation and 2 action dims) and its sequence sampler on `device`."""
    sampler = SequenceSampler(data, cfg.horizon, cfg.k, cfg.reward_scale, device=device, seed=seed,
                              prioritized=cfg.prioritized_replay)
    return Agent(4, 2, cfg, device, seed=seed), sampler


def seed_updater(data, cfg, device: torch.device, seeds: int, kind: str,
                 compile_options: dict | None = None) -> tuple[Callable[[], int], list[Agent]]:
    """A function doing one update step of `seeds` agents (seeds 0..seeds-1), returning how many
    seed-updates it did, and those agents: kind "eager" / "compiled" (Agent.update one after the other) or "stacked" /
    "stacked_compiled" (one StackedAgents update for all); compiled with compile_options
    (torch.compile's backend and mode)."""
    agents, samplers = map(list, zip(*(agent_and_sampler(data, cfg, device, s) for s in range(seeds))))
    if kind in ("stacked", "stacked_compiled"):
        stacked = StackedAgents(agents)
        if kind == "stacked_compiled":
            stacked.compile(**compile_options)

        def step() -> int:
            batches = [sampler.sample(cfg.batch_size) for sampler in samplers]
            stacked.update(batches)
            if stacked.priorities is not None:
                for sampler, batch, priorities in zip(samplers, batches, stacked.priorities):
                    sampler.update_priorities(batch.index, priorities)
            return seeds
        return step, agents

    def step() -> int:
        for sampler, agent in zip(samplers, agents):
            batch = sampler.sample(cfg.batch_size)
            agent.update(batch)
            sampler.update_priorities(batch.index, agent.priorities)
        return seeds
    if kind == "compiled":
        for agent in agents:
            agent.compile(**compile_options)
    return step, agents


WARMUP_UPDATES = 5


def max_param_gap(a: Agent, b: Agent) -> float:
    """Largest absolute difference between two agents' weights (the compiled update's agreement with
    the eager one after the same updates on the same batches; CUDA graphs that replayed stale
    memory would show here as a gap of the weights' own size, not float rounding)."""
    with torch.no_grad():
        return max(float((p - q).abs().max()) for p, q in zip(a.model.parameters(), b.model.parameters()))


def update_speeds(data, cfg, device: torch.device, seconds: float, compile_options: dict | None,
                  stacked_seeds: int) -> dict[str, float]:
    """Seed-updates per second of each contender, the contenders taking turns in windows of
    seconds / ROUNDS each, so machine load drifts hit them alike: eager Agent.update, and with
    compile_options the compiled one; with stacked_seeds S, S agents one after the other against
    the same S as one StackedAgents (and, with compile_options, a compiled StackedAgents)."""
    kinds = {"eager": (1, "eager")}  # contender -> (seeds, kind)
    if compile_options:
        kinds["compiled"] = (1, "compiled")
    if stacked_seeds:
        kinds.update(sequential=(stacked_seeds, "eager"), stacked=(stacked_seeds, "stacked"))
        if compile_options:
            kinds["stacked_compiled"] = (stacked_seeds, "stacked_compiled")
    contenders, agents = {}, {}
    for name, (seeds, kind) in kinds.items():
        contenders[name], agents[name] = seed_updater(data, cfg, device, seeds, kind, compile_options)
    warmup_s = {}
    for name, step in contenders.items():
        start = time.perf_counter()
        for _ in range(WARMUP_UPDATES):  # warm-up (the compiled agent compiles here)
            step()
        sync(device)
        warmup_s[name] = time.perf_counter() - start
    # eager and compiled started from seed 0's weights and sampled the same batches: compare them now
    gap = max_param_gap(agents["eager"][0], agents["compiled"][0]) if compile_options else None
    done = {name: 0 for name in contenders}
    spent = {name: 0.0 for name in contenders}
    for _ in range(ROUNDS):
        for name, step in contenders.items():
            start = time.perf_counter()
            while time.perf_counter() - start < seconds / ROUNDS:
                for _ in range(10):
                    done[name] += step()
                sync(device)
            spent[name] += time.perf_counter() - start
    rates = {name: done[name] / spent[name] for name in contenders}
    row = {"updates_per_s": round(rates["eager"], 2)}
    if compile_options:
        row.update(updates_per_s_compiled=round(rates["compiled"], 2), compile_s=round(warmup_s["compiled"], 1),
                   compiled_over_eager=round(rates["compiled"] / rates["eager"], 3),
                   compiled_max_param_gap=float(f"{gap:.3g}"))
    if stacked_seeds:
        row.update(stacked_seeds=stacked_seeds, seed_updates_per_s_sequential=round(rates["sequential"], 2),
                   seed_updates_per_s_stacked=round(rates["stacked"], 2),
                   stacked_over_sequential=round(rates["stacked"] / rates["sequential"], 3))
        if compile_options:
            row.update(seed_updates_per_s_stacked_compiled=round(rates["stacked_compiled"], 2),
                       stacked_compile_s=round(warmup_s["stacked_compiled"], 1),
                       stacked_compiled_over_sequential=round(rates["stacked_compiled"] / rates["sequential"], 3))
    return row


def plan_ms(data, cfg, device: torch.device, num_envs: int, repeats: int,
            compile_options: dict | None) -> dict[str, float]:
    """Milliseconds per batched plan for num_envs observations (what LatentPlanner does at every
    evaluation step), eager and (with compile_options) compiled, in alternating rounds."""
    model = Agent(4, 2, cfg, device, seed=0).model
    obs = data["observations"][:num_envs]
    planners = {}
    for name in ("eager", "compiled") if compile_options else ("eager",):
        planners[name] = LatentPlanner(model, cfg, torch.as_tensor(obs.mean(0)), torch.ones(4), device, seed=0)
        if name == "compiled":
            planners[name].compile(**compile_options)
        for _ in range(2):  # warm-up (td_mpc's second plan is warm-started: its own graph)
            planners[name](obs)
    spent = {name: 0.0 for name in planners}
    for _ in range(ROUNDS):
        for name, planner in planners.items():
            sync(device)
            start = time.perf_counter()
            for _ in range(repeats):
                planner(obs)
            sync(device)
            spent[name] += time.perf_counter() - start
    row = {f"plan_ms_{num_envs}_envs": round(1000 * spent["eager"] / (ROUNDS * repeats), 2)}
    if compile_options:
        row[f"plan_ms_{num_envs}_envs_compiled"] = round(1000 * spent["compiled"] / (ROUNDS * repeats), 2)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed window per update measurement")
    parser.add_argument("--profiles", default="paper,quick")
    parser.add_argument("--modes", default="manager,iql_td_mpc,td_mpc")
    parser.add_argument("--compile", dest="compile_backend", nargs="?", const="inductor", default=None,
                        help="also time the update under torch.compile (default backend inductor), side by side")
    parser.add_argument("--compile-mode", default=None,
                        help="torch.compile's mode for the compiled contenders, e.g. reduce-overhead (CUDA graphs: "
                             "3.8x the eager Manager update on an H200, docs/manager.md) or max-autotune")
    parser.add_argument("--stacked-seeds", type=int, default=0,
                        help="also time S seeds as one StackedAgents against S agents one after the other")
    parser.add_argument("--no-plan", action="store_true", help="skip the planning measurements")
    parser.add_argument("--plan-envs", default="1,100", help="env counts of the planning measurements")
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.compile_mode and not args.compile_backend:
        parser.error("--compile-mode needs --compile")
    compile_options = None if args.compile_backend is None else {
        "backend": args.compile_backend, **({"mode": args.compile_mode} if args.compile_mode else {})}
    data = benchmark_data(args.dataset_steps)
    rows = []
    for profile in args.profiles.split(","):
        for mode in args.modes.split(","):
            cfg = benchmark_config(mode, profile)
            row = {"mode": mode, "profile": profile, "batch_size": cfg.batch_size, "horizon": cfg.horizon,
                   "mlp_dim": cfg.mlp_dim, "num_pi_samples": cfg.num_pi_samples,
                   "num_random_samples": cfg.num_random_samples,
                   **update_speeds(data, cfg, device, args.seconds, compile_options, args.stacked_seeds)}
            for n in () if args.no_plan else [int(n) for n in args.plan_envs.split(",")]:
                row.update(plan_ms(data, cfg, device, n, 20 if n == 1 else 5, compile_options))
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {"device": args.device if device.type == "cpu" else torch.cuda.get_device_name(device),
              "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "compile_backend": args.compile_backend, "compile_mode": args.compile_mode,
              "torch": torch.__version__, "code_version": code_version(), "rows": rows}
    if args.out:
        write_json_atomic(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))


if __name__ == "__main__":
    main()
