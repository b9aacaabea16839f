"""python -m runs.demo: the whole hierarchy on one task, end to end (what `make demo` runs).

    dataset (generated if absent) -> Manager (IQL-TD-MPC, k-step intents) -> BC without intents
    -> BC with random intents (the paper's Table 3 ablation) -> BC with the Manager's intents
    -> a small table of D4RL normalised scores

Each step is the same command `make manager` / `make worker` runs (printed before it runs), so a
finished step is reported and skipped on a re-run and an interrupted one resumes. On a GPU the
paper's settings are used (Manager 300K steps, workers 500K / 200K, 100 evaluation episodes: about
two hours on an H200, estimated from its measured update rates); on a CPU the quick profile with a
shorter Manager run, so the demo fits in about 15 minutes on 2 cores.
"""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from common.atomic import write_text_atomic
from common.cli import parse_config
from common.cli import config_field as field
from common.device import DEVICE_HELP, resolve_device, resolve_profile
from common.errors import INPUT_ERRORS, report_input_error

CPU_MANAGER_STEPS = 8_000  # quick-profile Manager steps on a CPU (~9 minutes on 2 cores, docs/manager.md)
CPU_WORKER_STEPS = 10_000  # worker steps on a CPU (BC: ~1-3 minutes per run)
CPU_EVAL_EPISODES = 50     # final evaluation episodes on a CPU (planning is batched over them)


@dataclass
class DemoConfig:
    env: str = field("maze2d-umaze-v1", "D4RL task name (the built-in default is generated locally)")
    seed: int = field(0, "seed of the dataset-independent parts: Manager, workers, evaluation")
    algo: str = field("bc", "the worker compared without and with intents")
    ablation: bool = field(True, "also run the worker with random intents (paper Table 3)")
    profile: str = field("auto", "paper | quick | smoke | auto (paper on a GPU, quick on a CPU)")
    device: str = field("auto", DEVICE_HELP)
    manager_steps: Optional[int] = field(None, "Manager training steps (default: the profile's on a GPU, "
                                         f"{CPU_MANAGER_STEPS} on a CPU)")
    worker_steps: Optional[int] = field(None, "worker training steps (default: the profile's on a GPU, "
                                        f"{CPU_WORKER_STEPS} on a CPU)")
    eval_episodes: Optional[int] = field(None, "workers' final evaluation episodes (default: the profile's on a "
                                         f"GPU, 100 for paper; {CPU_EVAL_EPISODES} on a CPU)")
    runs_dir: str = field("runs", "root of the run folders")
    data_dir: Optional[str] = field(None, "folder searched first for the dataset")


def manager_command(cfg: DemoConfig, profile: str) -> list[str]:
    steps = cfg.manager_steps if cfg.manager_steps is not None else (CPU_MANAGER_STEPS if profile == "quick" else None)
    return [sys.executable, "-m", "manager", "train", "--mode", "manager", "--env", cfg.env, "--seed", str(cfg.seed),
            "--profile", profile, "--device", cfg.device, "--runs-dir", cfg.runs_dir,
            *(["--data-dir", cfg.data_dir] if cfg.data_dir else []), *(["--steps", str(steps)] if steps else [])]


def worker_command(cfg: DemoConfig, profile: str, intent: str) -> list[str]:
    manager = Path(cfg.runs_dir) / cfg.env / "manager" / f"seed{cfg.seed}" / "manager.pt"
    quick = profile == "quick"  # the CPU demo: its own sizes; paper and smoke keep the profile's
    steps = cfg.worker_steps if cfg.worker_steps is not None else (CPU_WORKER_STEPS if quick else None)
    episodes = cfg.eval_episodes if cfg.eval_episodes is not None else (CPU_EVAL_EPISODES if quick else None)
    # on the CPU only the final evaluation is run (planning intents at every step is the slow part)
    eval_every = ["--eval_every", str(steps)] if quick and steps else []
    return [sys.executable, "-m", "corl", cfg.algo, "--env", cfg.env, "--seed", str(cfg.seed), "--intent", intent,
            "--profile", profile, "--device", cfg.device, "--runs_dir", cfg.runs_dir,
            *(["--data_dir", cfg.data_dir] if cfg.data_dir else []),
            *(["--manager", str(manager)] if intent == "manager" else []),
            *(["--steps", str(steps)] if steps else []), *eval_every,
            *(["--final_eval_episodes", str(episodes)] if episodes else [])]


def final_of(cfg: DemoConfig, *what: str) -> Path:
    return Path(cfg.runs_dir, cfg.env, *what, f"seed{cfg.seed}", "final.json")


def run_step(command: list[str], final: Path) -> dict:
    """Run one step unless its final.json exists; returns final.json's contents."""
    if final.is_file():
        print(f"[demo] done already: {final.parent}")
    else:
        print("[demo] $ " + shlex.join(["python", *command[1:]]), flush=True)
        with subprocess.Popen(command) as proc:
            try:
                return_code = proc.wait()
            except KeyboardInterrupt:  # the step got the terminal's Ctrl-C too: let it checkpoint and stop
                proc.wait()  # (subprocess.run would kill it after 0.25 s and lose its steps since the last one)
                raise
        if return_code:
            raise subprocess.CalledProcessError(return_code, command)
    return json.loads(final.read_text())


def results_table(cfg: DemoConfig, results: dict[str, dict]) -> str:
    """Markdown: one row per intent mode with the score (mean +- std over evaluation episodes)."""
    lines = [f"{cfg.algo} on {cfg.env}, seed {cfg.seed} (D4RL normalised score, mean +- std over episodes)", "",
             "| worker | intents | steps | eval episodes | normalised score |", "| --- | --- | --- | --- | --- |"]
    for intent, r in results.items():
        lines.append(f"| {cfg.algo} | {intent} | {r['steps']} | {r['eval_episodes']} | "
                     f"{r['normalized_score']:.1f} +- {r['normalized_score_std']:.1f} |")
    return "\n".join(lines)


def run_demo(cfg: DemoConfig) -> dict[str, dict]:
    from tasks import load_dataset

    profile = resolve_profile(cfg.profile, resolve_device(cfg.device))
    print(f"[demo] {cfg.env}: profile {profile}; dataset, Manager, {cfg.algo} without and with intents", flush=True)
    intents = ("none", "random", "manager") if cfg.ablation else ("none", "manager")
    load_dataset(cfg.env, cfg.data_dir)  # generated with D4RL's procedure when absent
    run_step(manager_command(cfg, profile), final_of(cfg, "manager"))
    results = {intent: run_step(worker_command(cfg, profile, intent), final_of(cfg, cfg.algo, intent))
               for intent in intents}
    table = results_table(cfg, results)
    out = Path(cfg.runs_dir) / cfg.env / f"demo_{cfg.algo}_seed{cfg.seed}.md"
    write_text_atomic(out, table + "\n")
    runs = " ".join(f"{Path(cfg.runs_dir) / cfg.env / cfg.algo / intent}/seed*" for intent in intents)
    print("\n" + table + f"\n\n(written to {out})\nOver more seeds (make demo SEED=1, SEED=2, ...): "
          f"python -m runs summary {runs}\nTheir learning curves: python -m runs curves {runs} --out curves.png")
    return results


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(DemoConfig, "python -m runs.demo", __doc__, argv)
    try:
        run_demo(cfg)
    except subprocess.CalledProcessError as exc:
        print(f"[demo] a step failed (exit {exc.returncode}): {shlex.join(exc.cmd)}; fix it and run again: "
              "finished steps are kept", file=sys.stderr)
        return 1
    except INPUT_ERRORS as exc:  # e.g. an unknown --env or --device: one line, before any step runs
        return report_input_error(exc)
    except KeyboardInterrupt:
        print("[demo] interrupted; run it again to go on: finished steps are kept, the interrupted one resumes "
              "from its checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
