"""Speed of the world-model agents behind docs/manager.md: updates/s and planning time per env step.

For each mode (manager, iql_td_mpc, td_mpc) at the paper's sizes and the quick profile's:
  - updates/s: Agent.update on batches from SequenceSampler (a generated maze2d-umaze dataset),
    after warm-up, synchronised at the end of the timed window only;
  - planning ms per env step for 1 and 100 environments: one batched plan from encoded
    observations (what LatentPlanner does at every evaluation step).

    python benchmarks/manager_speed.py [--device cpu|cuda] [--out docs/results/manager_speed_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import write_json_atomic  # noqa: E402
from manager.agent import Agent  # noqa: E402
from manager.config import apply_profile, make_config, resolve_for_env  # noqa: E402
from manager.data import SequenceSampler  # noqa: E402
from manager.inference import LatentPlanner  # noqa: E402
from tasks import generate_dataset, get_task, read_dataset  # noqa: E402
from tasks.datasets import code_version  # noqa: E402

ENV = "maze2d-umaze-v1"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def updates_per_s(data, cfg, device: torch.device, seconds: float) -> float:
    sampler = SequenceSampler(data, cfg.horizon, cfg.k, cfg.reward_scale, device=device, seed=0,
                              prioritized=cfg.prioritized_replay)
    agent = Agent(4, 2, cfg, device, seed=0)
    for _ in range(5):  # warm-up
        agent.update(sampler.sample(cfg.batch_size))
    sync(device)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            batch = sampler.sample(cfg.batch_size)
            agent.update(batch)
            sampler.update_priorities(batch.index, agent.priorities)
        n += 10
        sync(device)
    return n / (time.perf_counter() - start)


def plan_ms(data, cfg, device: torch.device, num_envs: int, repeats: int) -> float:
    model = Agent(4, 2, cfg, device, seed=0).model
    obs = data["observations"][:num_envs]
    planner = LatentPlanner(model, cfg, torch.as_tensor(obs.mean(0)), torch.ones(4), device, seed=0)
    planner(obs)  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        planner(obs)
    sync(device)
    return 1000 * (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed window per update measurement")
    parser.add_argument("--profiles", default="paper,quick")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        path = generate_dataset(ENV, out=Path(tmp) / "umaze.hdf5", steps=50_000, seed=0, show_progress=False)
        data = read_dataset(path, get_task(ENV))
    rows = []
    for profile in args.profiles.split(","):
        for mode in ("manager", "iql_td_mpc", "td_mpc"):
            cfg = resolve_for_env(apply_profile(make_config(mode), profile), ENV)
            row = {"mode": mode, "profile": profile, "batch_size": cfg.batch_size, "horizon": cfg.horizon,
                   "mlp_dim": cfg.mlp_dim, "num_pi_samples": cfg.num_pi_samples,
                   "num_random_samples": cfg.num_random_samples,
                   "updates_per_s": round(updates_per_s(data, cfg, device, args.seconds), 2)}
            for n in (1, 100):
                row[f"plan_ms_{n}_envs"] = round(plan_ms(data, cfg, device, n, repeats=20 if n == 1 else 5), 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {"device": args.device if device.type == "cpu" else torch.cuda.get_device_name(device),
              "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "code_version": code_version(), "rows": rows}
    if args.out:
        write_json_atomic(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))


if __name__ == "__main__":
    main()
