"""How many tensor ops one world-model update issues, by phase: why the GPU update is launch-bound.

On the H200 the paper-size update runs no faster than the half-width quick one (docs/manager.md), so
its time goes to issuing ops, not to arithmetic. This counts the ops of one eager `Agent.update` per
mode at the given profile's sizes, with torch's profiler on the CPU: the top-level aten ops (each
becomes one or a few kernel launches on a GPU) in the forward pass and the rest of the update
outside the backward and the optimiser, the backward pass, and the optimisers' steps. The optimisers
run with `foreach=True`, the multi-tensor Adam that PyTorch picks by default on a GPU (on a CPU it
loops over the parameters), so the count is the one a GPU sees.

    python benchmarks/update_op_count.py [--profile paper] [--out docs/results/update_op_count.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.manager_speed import agent_and_sampler, benchmark_config, benchmark_data  # noqa: E402
from common.atomic import write_json_atomic  # noqa: E402
from tasks.datasets import code_version  # noqa: E402


def phase_of(event) -> str:
    """'optimizer' inside an optimiser's step, 'backward' inside the autograd engine, else 'forward'."""
    while event is not None:
        if event.name.startswith("Optimizer.step"):
            return "optimizer"
        if event.name.startswith("autograd::engine"):
            return "backward"
        event = event.cpu_parent
    return "forward"


def count_update_ops(data, mode: str, profile_name: str) -> dict[str, int]:
    """Top-level aten ops of one update (after two warm-up updates), by phase."""
    cfg = benchmark_config(mode, profile_name)
    agent, sampler = agent_and_sampler(data, cfg, torch.device("cpu"), seed=0)
    for optimizer in (agent.model_optim, agent.pi_optim):
        for group in optimizer.param_groups:
            group["foreach"] = True  # the GPU's default Adam
    for _ in range(2):
        agent.update(sampler.sample(cfg.batch_size))
    batch = sampler.sample(cfg.batch_size)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        agent.update(batch)
    top_level = [e for e in prof.events() if e.name.startswith("aten::")
                 and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))]
    counts = collections.Counter(phase_of(e) for e in top_level)
    return {"forward": counts["forward"], "backward": counts["backward"], "optimizer": counts["optimizer"],
            "total": len(top_level)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="paper", help="sizes: paper | quick | smoke")
    parser.add_argument("--modes", default="manager,iql_td_mpc,td_mpc")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = benchmark_data(20_000)
    rows = []
    for mode in args.modes.split(","):
        row = {"mode": mode, "profile": args.profile, **count_update_ops(data, mode, args.profile)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        write_json_atomic(args.out, {"what": "top-level aten ops of one eager update, by phase (foreach Adam)",
                                     "torch": torch.__version__, "code_version": code_version(), "rows": rows})


if __name__ == "__main__":
    main()
