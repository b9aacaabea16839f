"""Do the Manager's intents at evaluation look like the intents the worker was trained on?

Dataset intents come from the inverse dynamics b(z_t, z_{t+k}) in hindsight (wrappers.augment);
evaluation intents from the Manager's planner at every step (wrappers.wrap_env). This prints, per
intent dimension, the mean and std of both (the first --rows dataset rows; --envs envs x --steps
steps of a uniform-random walk at evaluation) and the mean shift in units of the dataset std.

    python benchmarks/intent_shift.py --manager runs/maze2d-umaze-v1/manager/seed0/manager.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks import get_task, load_dataset, make_vector_env  # noqa: E402
from wrappers import augment, make_intent_source, wrap_env  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manager", required=True, help="path of a manager.pt")
    parser.add_argument("--env", default="maze2d-umaze-v1")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    obs_dim = get_task(args.env).obs_dim
    source = make_intent_source("manager", args.manager, args.env, obs_dim, device="cpu")
    data = load_dataset(args.env, args.data_dir)
    rows = {k: v[:args.rows] for k, v in data.items() if len(v) == len(data["observations"])}
    dataset_intents = augment(rows, source)["observations"][:, obs_dim:]
    env = wrap_env(make_vector_env(args.env, args.envs), source)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    eval_intents = []
    for _ in range(args.steps):
        obs, *_ = env.step(rng.uniform(-1, 1, (args.envs, get_task(args.env).act_dim)).astype(np.float32))
        eval_intents.append(obs[:, obs_dim:])
    eval_intents = np.concatenate(eval_intents)
    d_mean, d_std = dataset_intents.mean(0), dataset_intents.std(0)
    e_mean, e_std = eval_intents.mean(0), eval_intents.std(0)
    print("dim  dataset mean/std   eval mean/std   shift (dataset stds)")
    for i in range(len(d_mean)):
        print(f"{i:3d}  {d_mean[i]:+.3f} / {d_std[i]:.3f}   {e_mean[i]:+.3f} / {e_std[i]:.3f}   "
              f"{(e_mean[i] - d_mean[i]) / max(d_std[i], 1e-8):+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
