"""python -m tasks {list,info,generate,evaluate}: D4RL tasks offline.

  python -m tasks list
  python -m tasks info maze2d-umaze-v1
  python -m tasks generate maze2d-umaze-v1 [--steps N] [--seed S] [--out PATH]
  python -m tasks evaluate maze2d-umaze-v1 --policy controller|random --episodes 100 [--seed S]

antmaze generation and its expert need D4RL's ant_hierarch_pol.pkl: --policy-file PATH, or
$ANTMAZE_POLICY_FILE, or the default places (`python -m tasks generate --help`).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from common.cli import add_config_arguments, config_field, config_from_args
from common.errors import INPUT_ERRORS, report_input_error
from common.run_dir import RunAlreadyComplete, RunDir
from tasks.antmaze.checkpoint import POLICY_ENV_VAR, POLICY_FILE_NAME
from tasks.datasets import (code_version, dataset_provenance, find_dataset,
                            generate_dataset, read_dataset, search_dirs, stale_sources, trajectories,
                            write_dir)
from tasks.evaluation import evaluate_policy, get_normalized_score, make_policy
from tasks.registry import TASKS, get_task

POLICY_FILE_HELP = ("antmaze: D4RL's goal-reaching ant policy ant_hierarch_pol.pkl (default: $ANTMAZE_POLICY_FILE, "
                    "else ../shared/data/d4rl/ or ~/.cache/tasks/antmaze/)")


@dataclass
class InfoConfig:
    env: str = config_field(None, "D4RL task name, e.g. maze2d-umaze-v1", positional=True)
    data_dir: str | None = config_field(None, "folder searched first for the dataset file")


@dataclass
class GenerateConfig:
    env: str = config_field(None, "D4RL task name, e.g. maze2d-umaze-v1", positional=True)
    steps: int | None = config_field(None, "dataset size in steps (default: D4RL's size: 1M/2M/4M)")
    seed: int = config_field(0, "seed of the whole generation (same seed -> same file contents)")
    out: str | None = config_field(None, "output file (default: <data dir>/<D4RL file name>)")
    data_dir: str | None = config_field(None, "folder to write into when --out is not given")
    overwrite: bool = config_field(False, "replace an existing file")
    policy_file: str | None = config_field(None, POLICY_FILE_HELP)
    skip_existing: bool = config_field(False, "do nothing if the dataset is already found (see `info`)")
    progress: bool = config_field(True, "show a progress bar")


@dataclass
class EvaluateConfig:
    env: str = config_field(None, "D4RL task name, e.g. maze2d-umaze-v1", positional=True)
    policy: str = config_field("controller", "scripted policy: random, or the task's own "
                               "(maze2d: controller; antmaze: expert, expert-mean, expert-noisy; "
                               "halfcheetah: medium, expert, medium-mean, expert-mean)")
    episodes: int = config_field(100, "number of evaluation episodes")
    seed: int = config_field(0, "evaluation seed (episode e starts from reset seed (seed, e))")
    d4rl_protocol: bool = config_field(
        False, "D4RL's reference-score protocol: one controller kept across all episodes, run one "
               "episode at a time (it then steers with the first episode's waypoints)")
    num_envs: int = config_field(100, "episodes run at once (batched); the result does not depend on it")
    policy_file: str | None = config_field(None, POLICY_FILE_HELP)
    runs_dir: str = config_field("runs", "root of the run folders: <runs-dir>/<env>/eval-<policy>/seed<k>/")
    overwrite: bool = config_field(False, "redo a finished evaluation run instead of reporting it")
    progress: bool = config_field(True, "show a progress bar")


def cmd_list(_args) -> int:
    for name, spec in sorted(TASKS.items()):
        print(f"{name:24s} {spec.domain:10s} T={spec.max_episode_steps:<5d} "
              f"REF_MIN={spec.ref_min_score:<8g} REF_MAX={spec.ref_max_score:<8g} "
              f"{'generated' if spec.generate else 'D4RL file'}")
    return 0


def cmd_info(cfg: InfoConfig) -> int:
    spec = get_task(cfg.env)
    print(f"env: {spec.name} (domain {spec.domain})")
    print(f"obs_dim: {spec.obs_dim}  act_dim: {spec.act_dim}  max_episode_steps: {spec.max_episode_steps}")
    print(f"REF_MIN: {spec.ref_min_score}  REF_MAX: {spec.ref_max_score}")
    print(f"scripted policies: {', '.join(['random', *spec.scripted_policies])}")
    print(f"dataset file: {spec.dataset_file} ({spec.default_dataset_steps} steps in D4RL)")
    print(f"searched in: {', '.join(map(str, search_dirs(cfg.data_dir)))}")
    path = find_dataset(spec.name, cfg.data_dir)
    if path is None:
        how = (f"`python -m tasks generate {spec.name}` writes it to {write_dir(cfg.data_dir)}"
               if spec.generate else f"download {spec.dataset_url}")
        print(f"dataset: not found; {how}")
        return 0
    data = read_dataset(path, spec)
    episodes = trajectories(data, drop_incomplete=False)
    returns = np.array([ep["rewards"].sum() for ep in episodes])
    print(f"dataset: {path}")
    print(f"  steps: {len(data['observations'])}  episodes (split on terminals/timeouts): {len(episodes)}")
    print(f"  mean episode return: {returns.mean():.3f}  rewarded steps: {data['rewards'].mean():.4f}")
    provenance = dataset_provenance(path)
    print("  provenance: " + (", ".join(f"{k}={v}" for k, v in sorted(provenance.items()))
                              or "none (not made by this project: e.g. D4RL's own file)"))
    for line in stale_sources(path, spec):
        print(f"  STALE: {line} (regenerate: `python -m tasks generate {spec.name} --overwrite`)")
    return 0


def use_policy_file(path: str | None) -> None:
    """--policy-file: checked here, then handed on as $ANTMAZE_POLICY_FILE (which the policy loader reads)."""
    if path is None:
        return
    if not os.path.isfile(path):
        raise ValueError(f"--policy-file {path}: no such file; pass the path of your copy of D4RL's "
                         f"{POLICY_FILE_NAME}")
    os.environ[POLICY_ENV_VAR] = os.path.abspath(path)


def cmd_generate(cfg: GenerateConfig) -> int:
    use_policy_file(cfg.policy_file)
    existing = (cfg.out if os.path.exists(cfg.out) else None) if cfg.out else find_dataset(cfg.env, cfg.data_dir)
    if cfg.skip_existing and existing:
        stale = stale_sources(existing, get_task(cfg.env))
        print(f"{existing} exists; nothing to do (--skip-existing)"
              + (f"; but it is STALE ({'; '.join(stale)}): pass --overwrite instead" if stale else ""))
        return 0
    start = time.perf_counter()
    path = generate_dataset(cfg.env, out=cfg.out, steps=cfg.steps, seed=cfg.seed, data_dir=cfg.data_dir,
                            overwrite=cfg.overwrite, show_progress=cfg.progress)
    steps = dataset_provenance(path)["steps"]
    elapsed = time.perf_counter() - start
    print(f"wrote {path} ({steps} steps, {elapsed:.1f} s, {steps / elapsed:.0f} steps/s incl. writing)")
    return 0


def _print_result(result: dict) -> None:
    print(f"env={result['env']} policy={result['policy']} protocol={result['protocol']} "
          f"episodes={result['episodes']} seed={result['seed']}")
    print(f"mean_return={result['mean_return']:.4f} std_return={result['std_return']:.4f}")
    if "success_rate" in result:
        print(f"success_rate={result['success_rate']:.4f}")
    print(f"normalized_score={result['normalized_score']:.4f}")


def check_same_policy_source(path, stored: dict | None, current: dict | None) -> None:
    """A stored evaluation is reported only for the weights it was made with: after a policy
    snapshot is republished, its old score must not be passed off as the new one's."""
    if stored == current:
        return
    def describe(source):
        return f"{source['file']} sha256 {source['sha256'][:12]}" if source else "an unrecorded policy version"
    raise RunAlreadyComplete(
        f"{path} holds a result made with {describe(stored)}; the policy now runs {describe(current)}. "
        "Pass --overwrite to evaluate the current policy there, or choose another --runs-dir")


def cmd_evaluate(cfg: EvaluateConfig) -> int:
    protocol = "d4rl-reference" if cfg.d4rl_protocol else "per-episode"
    what = f"eval-{cfg.policy}" + ("-d4rl-protocol" if cfg.d4rl_protocol else "")
    run = RunDir(cfg.runs_dir, cfg.env, what, cfg.seed)
    use_policy_file(cfg.policy_file)
    policy = make_policy(cfg.env, cfg.policy, cfg.seed, cfg.d4rl_protocol)
    source = getattr(policy, "source", None)  # the weights it runs, where they can change (snapshots)
    with run.claim():  # this process alone evaluates into the folder
        return _evaluate_into(run, cfg, policy, source, protocol)


def _evaluate_into(run: RunDir, cfg: EvaluateConfig, policy, source, protocol: str) -> int:
    if run.is_complete() and not cfg.overwrite:
        stored = run.read_final()
        check_same_policy_source(run.path, stored.get("policy_source"), source)
        print(f"{run.path} is already complete; reporting it (pass --overwrite to redo)", file=sys.stderr)
        _print_result(stored)
        return 0
    run.start(cfg, overwrite=cfg.overwrite)
    start = time.perf_counter()
    num_envs = 1 if cfg.d4rl_protocol else cfg.num_envs
    returns = evaluate_policy(cfg.env, policy, cfg.episodes, cfg.seed, num_envs, show_progress=cfg.progress)
    scores = get_normalized_score(cfg.env, returns)
    for episode, (ret, score) in enumerate(zip(returns, scores)):
        run.log_metrics({"episode": episode, "return": float(ret), "normalized_score": float(score)})
    result = {"env": cfg.env, "policy": cfg.policy, "protocol": protocol, "episodes": cfg.episodes,
              "seed": cfg.seed, "mean_return": float(returns.mean()), "std_return": float(returns.std()),
              "normalized_score": float(scores.mean()), "normalized_score_std": float(scores.std()),
              "wall_time_s": time.perf_counter() - start, "code_version": code_version(),
              "config": asdict(cfg), "policy_source": source}
    if get_task(cfg.env).domain == "antmaze":  # return 1 exactly when the goal is reached
        result["success_rate"] = float((returns >= 1.0).mean())
    run.finish(result)
    _print_result(result)
    return 0


COMMANDS = {
    "info": (InfoConfig, cmd_info, "show a task's facts and its dataset's location and statistics"),
    "generate": (GenerateConfig, cmd_generate, "regenerate a task's dataset with D4RL's procedure"),
    "evaluate": (EvaluateConfig, cmd_evaluate, "score a scripted policy; last line: normalized_score=<value>"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered D4RL tasks")
    for name, (cls, _fn, help_text) in COMMANDS.items():
        add_config_arguments(sub.add_parser(name, help=help_text, description=help_text), cls)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            return cmd_list(args)
        cls, fn, _ = COMMANDS[args.command]
        return fn(config_from_args(cls, args))
    except (*INPUT_ERRORS, FileExistsError) as exc:
        return report_input_error(exc)


if __name__ == "__main__":
    sys.exit(main())
