"""Is a regenerated halfcheetah-medium-replay-v2 the original run's replay buffer? (docs/tasks.md)

medium-replay is the replay buffer of the seeded SAC run up to the medium point (the env steps in
tasks/halfcheetah/assets/medium.json). Without the run's checkpoint, `python -m tasks generate`
re-runs that training from scratch. This script does exactly that re-run (in a temporary run
folder, so the checkpoint is not used) and compares every array, bit for bit, with the first
transitions of the original run's checkpoint:

    python benchmarks/halfcheetah_replay_check.py [--steps N] [--out docs/results/halfcheetah_replay_check.json]

Bit-equality holds only on the machine, torch version, device and thread count of the original
run (OMP_NUM_THREADS=1 there); elsewhere, check the regenerated file statistically.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import write_json_atomic  # noqa: E402
from common.checkpoint import load_checkpoint  # noqa: E402
from tasks.datasets import code_version  # noqa: E402
from tasks.halfcheetah import dataset_steps  # noqa: E402
from tasks.halfcheetah.generate import checkpoint_transitions, replay_dataset  # noqa: E402
from tasks.halfcheetah.sac import SACConfig  # noqa: E402


def original_transitions(checkpoint: Path, steps: int) -> dict[str, np.ndarray]:
    """The first `steps` transitions of the original run's buffer, in D4RL's layout."""
    ckpt = load_checkpoint(checkpoint)
    if ckpt["step"] < steps:
        raise SystemExit(f"error: {checkpoint} is at step {ckpt['step']}, before {steps}")
    return checkpoint_transitions(ckpt, steps)


def compare(regenerated: dict[str, np.ndarray], original: dict[str, np.ndarray]) -> dict[str, object]:
    """Per key: bit-equal or not, the first differing row and the largest absolute difference."""
    report: dict[str, object] = {}
    for key in sorted(original):
        a, b = regenerated[key], original[key]
        if a.shape != b.shape:
            report[key] = {"equal": False, "shapes": [list(a.shape), list(b.shape)]}
            continue
        rows = np.flatnonzero(np.any((a != b).reshape(len(a), -1), axis=1))
        diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if len(a) else 0.0
        report[key] = {"equal": len(rows) == 0, "first_differing_row": int(rows[0]) if len(rows) else None,
                       "max_abs_diff": diff}
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="env steps (default: medium-replay's size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default=SACConfig.root, help="the original run's root folder")
    parser.add_argument("--out", default=None, help="write the report as JSON here")
    args = parser.parse_args()
    steps = args.steps or dataset_steps("medium-replay")
    checkpoint = Path(args.root).expanduser() / "halfcheetah" / "train" / f"seed{args.seed}" / "checkpoint.pt"
    original = original_transitions(checkpoint, steps)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:  # an empty root: no checkpoint, so a real re-run
        regenerated = replay_dataset(steps, args.seed, show_progress=sys.stderr.isatty(), root=scratch)
    wall = time.perf_counter() - start
    keys = compare(regenerated, original)
    result = {"what": "halfcheetah-medium-replay-v2 re-run vs the original run's buffer", "steps": steps,
              "seed": args.seed, "all_equal": all(k["equal"] for k in keys.values()), "keys": keys,
              "rerun_wall_s": round(wall, 1), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "code_version": code_version()}
    print(json.dumps(result, indent=2))
    if args.out:
        write_json_atomic(Path(args.out), result)
    return 0 if result["all_equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
