"""How many training steps of a flat agent fit the seconds a device call has left, evaluation included.

The `score` stage of stage.sh runs the speed measurements first, then a flat agent (IQL-TD-MPC or
TD-MPC) for as many steps as fit what is left of the call, followed by its MPC evaluation, so that a
lent session ends with a normalised score. A flat agent's steps do not reshape its training (no
schedule is tied to the total), so N steps at the paper's settings are the first N steps of the
paper's 1M-step run. From the measured updates/s and batched planning time of the command's mode and
profile (benchmarks/manager_speed.py's JSON):

    evaluation_s = rounds x max_episode_steps x (plan_ms_100_envs + ENV_MS_PER_STEP) / 1000
    steps        = SPEED_MARGIN x updates_per_s x (seconds - evaluation_s x EVAL_MARGIN - STARTUP_S),
                   rounded down to whole checkpoints

    python benchmarks/gpu/fit_steps.py --speed OUT/manager_speed_gpu.json --seconds 300 -- \
        python3 -m manager train --mode iql_td_mpc --env maze2d-medium-v1 --profile paper

prints the step count (0 when not even one checkpoint's worth fits) and the run's --time-limit-s (the
guard should training be slower than measured), and on stderr the estimate.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from manager.config import PROFILE_EVAL_EPISODES  # noqa: E402
from tasks import get_task  # noqa: E402

ENV_MS_PER_STEP = 10.0  # stepping 100 maze2d envs on the CPU: ~5 ms measured here (600 steps in 2.9 s), doubled
STARTUP_S = 30.0  # loading and normalising the dataset, building the agent, the last checkpoint
SPEED_MARGIN = 0.85  # training also logs and checkpoints, which the update benchmark leaves out
EVAL_MARGIN = 1.5
TIME_LIMIT_SLACK_S = 30  # the run's --time-limit-s, the guard if training is slower than measured: train_s + this


def command_option(command: list[str], name: str, default: str | None = None) -> str | None:
    """The value of `--name VALUE` (or `--name=VALUE`) in a command line, else default."""
    for i, arg in enumerate(command):
        if arg == name and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def fit_steps(speed: dict, mode: str, profile: str, env: str, seconds: float, eval_episodes: int,
              eval_num_envs: int, checkpoint_every: int) -> tuple[int, dict]:
    """(steps, estimate): the whole checkpoints of training that leave time for the evaluation."""
    rows = [r for r in speed["rows"] if r["mode"] == mode and r["profile"] == profile]
    if not rows:
        raise SystemExit(f"error: the speed file has no row for mode {mode!r}, profile {profile!r}; "
                         f"it has {sorted({(r['mode'], r['profile']) for r in speed['rows']})}")
    row = rows[0]
    plan_ms = row.get("plan_ms_100_envs")
    if plan_ms is None:
        raise SystemExit("error: the speed file has no planning time (plan_ms_100_envs): measure without --no-plan")
    num_envs = min(eval_episodes, eval_num_envs)
    rounds = math.ceil(eval_episodes / num_envs)
    plan_ms = plan_ms * num_envs / 100 if num_envs > 100 else plan_ms  # the 100-env figure bounds fewer envs
    evaluation_s = rounds * get_task(env).max_episode_steps * (plan_ms + ENV_MS_PER_STEP) / 1000
    train_s = seconds - EVAL_MARGIN * evaluation_s - STARTUP_S
    steps = int(SPEED_MARGIN * row["updates_per_s"] * max(train_s, 0.0)) // checkpoint_every * checkpoint_every
    return steps, {"seconds": seconds, "updates_per_s": row["updates_per_s"], "plan_ms_100_envs": row["plan_ms_100_envs"],
                   "evaluation_s": round(evaluation_s, 1), "train_s": round(train_s, 1), "steps": steps,
                   "time_limit_s": int(max(train_s, 0.0)) + TIME_LIMIT_SLACK_S}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=Path, required=True, help="benchmarks/manager_speed.py's JSON")
    parser.add_argument("--seconds", type=float, required=True, help="seconds left for training and evaluation")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the flat agent's training command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    mode = command_option(command, "--mode", "manager")
    if mode not in ("iql_td_mpc", "td_mpc"):
        raise SystemExit(f"error: --mode {mode}: only the flat agents (iql_td_mpc, td_mpc) are evaluated with a score")
    profile = command_option(command, "--profile", "paper")
    if profile == "auto":
        profile = "paper"  # what auto means on a GPU
    episodes = int(command_option(command, "--eval-episodes", str(PROFILE_EVAL_EPISODES[profile])))
    steps, estimate = fit_steps(json.loads(args.speed.read_text()), mode, profile,
                                command_option(command, "--env", "maze2d-umaze-v1"), args.seconds, episodes,
                                int(command_option(command, "--eval-num-envs", "100")),
                                int(command_option(command, "--checkpoint-every", "1000")))
    print(json.dumps(estimate), file=sys.stderr)
    print(steps, estimate["time_limit_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
