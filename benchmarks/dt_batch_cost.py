"""Seconds per DT update against the batch of sequences: why the CPU profiles shrink DT's batch.

CORL's maze2d and halfcheetah DT presets use 4096 sequences of 20 steps per update; this times
our corl/dt.py update (CORL's default model: width 128, 3 layers, 1 head) on random sequences of
the augmented maze2d size (state 14, action 2) at several batch sizes.

    python benchmarks/dt_batch_cost.py [--device cpu|cuda] [--batches 64,256,1024,4096] \
        [--out docs/results/dt_batch_cost_cpu.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.worker_speed import ACTION_DIM, DT_EPISODE_LEN, STATE_DIM, random_sequences, timed  # noqa: E402
from common.atomic import write_json_atomic  # noqa: E402
from common.machine import device_description  # noqa: E402
from corl import dt  # noqa: E402
from tasks.datasets import code_version  # noqa: E402


def seconds_per_update(batch: int, device: str, updates: int) -> float:
    algo = dt.build_algo(dt.DTConfig(), STATE_DIM, ACTION_DIM, DT_EPISODE_LEN, device)
    data = random_sequences(2, batch, device)
    algo.update(data[0])  # warm-up
    return 1.0 / timed(algo.update, data, device, updates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="64,256,1024,4096", help="comma-separated batch sizes")
    parser.add_argument("--seconds", type=float, default=10.0, help="about this long per batch size")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    results = {}
    for batch in (int(b) for b in args.batches.split(",")):
        probe = seconds_per_update(batch, args.device, 1)
        updates = max(1, min(200, int(args.seconds / max(probe, 1e-6))))
        results[str(batch)] = round(seconds_per_update(batch, args.device, updates), 4)
        print(f"batch {batch:5d}: {results[str(batch)]:.4f} s per update ({updates} updates)", flush=True)
    if args.out:
        write_json_atomic(args.out, {
            "what": "seconds per DT update (corl/dt.py, CORL's default model) by batch of 20-step sequences",
            "device": args.device, "device_name": device_description(args.device), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "state_dim": STATE_DIM, "action_dim": ACTION_DIM,
            "code_version": code_version(), "seconds_per_update": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
