"""Grid expansion: one cell per (env, arm, seed), each with its run folder and its command.

A cell's command is the one `make manager` / `make flat` / `make worker` runs for it (plus the
grid's --runs-dir / --data-dir), so a cell can always be re-run by hand. Table 2 adds one Manager
cell per (env, seed), shared by every worker of that env and seed and run before them. Cells whose
task or worker does not exist yet carry the reason (`unavailable`) and are never run. With
`stack_seeds`, an env's Manager (or flat-agent) cells form a stack group: those due together run as
one `--seeds` process (still one run folder, manifest and final.json per cell).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.cli import parse_seeds, split_names  # noqa: F401 (re-exported: runs/__main__.py)
from common.run_dir import RunDir
from runs import catalog
from runs.tables import PAPER_DATASETS, TableSpec

MANIFEST_NAME = "manifest.json"
LOG_NAME = "cell.log"
DOMAINS = ("antmaze", "maze2d", "halfcheetah")


@dataclass(frozen=True)
class GridOptions:
    """What every command of a grid shares."""
    profile: str = "auto"
    device: str = "auto"
    runs_dir: str = "runs"
    data_dir: str | None = None
    python: str = sys.executable
    stack_seeds: bool = False  # an env's Manager (or flat) cells of all seeds in one process: --seeds
    compile: bool = False  # Manager, flat-agent and compilable worker cells torch.compile their update: --compile
    compile_mode: str = "default"  # torch.compile's mode for them: --compile-mode (reduce-overhead: CUDA graphs)
    wandb: bool = False  # every training cell also logs to Weights & Biases (offline unless WANDB_MODE says)


@dataclass(frozen=True)
class Cell:
    env: str
    seed: int
    arm: tuple[str, ...]              # run-folder parts under runs/<env>/: ("manager",), ("td_mpc",), ("bc", "none")
    kind: str                         # "manager" | "flat" | "worker"
    run_dir: Path
    command: tuple[str, ...]
    depends_on: tuple[str, ...] = ()  # keys of the cells that must finish first
    unavailable: str | None = None    # why this cell cannot run today (None: it can)
    stack_group: str | None = None    # cells of one group that are due together run as one stacked process

    @property
    def key(self) -> str:
        return "/".join((self.env, *self.arm, f"seed{self.seed}"))

    @property
    def final_path(self) -> Path:
        return self.run_dir / "final.json"

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST_NAME

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_NAME


# --- the commands (the Makefile's manager / flat / worker targets) -----------------------------------
def compile_args(opt: GridOptions) -> tuple[str, ...]:
    """--compile [--compile-mode M] of the Manager and flat-agent commands (nothing without --compile)."""
    if not opt.compile:
        return ()
    return ("--compile",) if opt.compile_mode == "default" else ("--compile", "--compile-mode", opt.compile_mode)


def trainer_command(mode: str, env: str, seed: int | Sequence[int], opt: GridOptions) -> tuple[str, ...]:
    """`make manager` (mode=manager) or `make flat MODE=...`: python -m manager train ...; several
    seeds: `make manager SEEDS=...`, one process with their parameters stacked (--seeds)."""
    seed_args = ("--seed", str(seed)) if isinstance(seed, int) else ("--seeds", ",".join(map(str, seed)))
    return (opt.python, "-m", "manager", "train", "--mode", mode, "--env", env, *seed_args,
            "--profile", opt.profile, "--device", opt.device, *compile_args(opt), *(("--wandb",) if opt.wandb else ()),
            "--runs-dir", opt.runs_dir, *(("--data-dir", opt.data_dir) if opt.data_dir else ()))


def stacked_command(cells: Sequence[Cell], opt: GridOptions) -> tuple[str, ...]:
    """The one command that trains a stack group's cells (one env and mode, several seeds)."""
    if len({cell.stack_group for cell in cells}) != 1 or cells[0].stack_group is None:
        raise ValueError(f"cells {[c.key for c in cells]} are not one stack group")
    return trainer_command(cells[0].arm[0], cells[0].env, [cell.seed for cell in cells], opt)


def worker_compile_args(opt: GridOptions) -> tuple[str, ...]:
    """--compile true [--compile_mode M] (pyrallis spelling) of a worker command (every worker's
    update compiles: corl/shared/compiled.py); nothing without --compile."""
    if not opt.compile:
        return ()
    mode = () if opt.compile_mode == "default" else ("--compile_mode", opt.compile_mode)
    return ("--compile", "true", *mode)


def worker_command(algo: str, intent: str, env: str, seed: int, opt: GridOptions) -> tuple[str, ...]:
    """`make worker ALGO=... INTENT=...`: python -m corl ALGO ... (intent=manager reads the default
    runs/<env>/manager/seed<k>/manager.pt, the grid's Manager cell)."""
    return (opt.python, "-m", "corl", algo, "--env", env, "--seed", str(seed), "--intent", intent,
            "--profile", opt.profile, "--device", opt.device, *worker_compile_args(opt),
            *(("--wandb", "true") if opt.wandb else ()), "--runs_dir", opt.runs_dir, *(("--data_dir", opt.data_dir) if opt.data_dir else ()))


# --- parsing the grid's axes ---------------------------------------------------------------------------
def resolve_envs(table: TableSpec, text: str | None) -> tuple[str, ...]:
    """The table's datasets by default; a domain name (maze2d, antmaze, halfcheetah) means the table's
    datasets of that domain; other names must be a paper dataset or a task the task layer knows."""
    if not split_names(text):
        return table.datasets
    envs: list[str] = []
    valid = set(PAPER_DATASETS) | catalog.known_tasks()
    for name in split_names(text):
        if name in DOMAINS:
            of_domain = [e for e in table.datasets if e.startswith(name + "-")]
            if not of_domain:
                raise ValueError(f"{table.name} covers no {name} dataset in the paper; name datasets explicitly")
            envs.extend(of_domain)
        elif name in valid:
            envs.append(name)
        else:
            raise ValueError(f"unknown env {name!r}; choose datasets of the paper ({', '.join(table.datasets)}), "
                             f"tasks of the task layer ({', '.join(sorted(catalog.known_tasks()))}) or a domain "
                             f"({', '.join(DOMAINS)})")
    return tuple(dict.fromkeys(envs))


def resolve_algos(table: TableSpec, text: str | None) -> tuple[str, ...]:
    """The table's workers by default; others must be workers `python -m corl` runs or plans."""
    names = split_names(text)
    if not table.takes_algos:
        if names:
            raise ValueError(f"{table.name} compares the flat agents td_mpc and iql_td_mpc; --algos applies to "
                             "table2 and table3 only")
        return ()
    if not names:
        return table.default_algos
    implemented, planned = catalog.worker_names()
    for name in names:
        if name not in implemented and name not in planned:
            later = f" and {', '.join(planned)} (planned)" if planned else ""
            raise ValueError(f"unknown worker {name!r}; choose among {', '.join(implemented)} (implemented){later}")
    return tuple(dict.fromkeys(names))


# --- expansion -------------------------------------------------------------------------------------------
def expand_grid(table: TableSpec, envs: tuple[str, ...], algos: tuple[str, ...], seeds: tuple[int, ...],
                opt: GridOptions) -> list[Cell]:
    """Every cell of the grid, Manager cells first (they gate the workers that use their intents)."""
    def run_dir(env: str, arm: tuple[str, ...], seed: int) -> Path:
        return RunDir(opt.runs_dir, env, list(arm), seed).path

    def stack_group(env: str, mode: str) -> str | None:
        return f"{env}/{mode}" if opt.stack_seeds else None

    managers: list[Cell] = []
    others: list[Cell] = []
    for env in envs:
        env_reason = catalog.task_unavailable_reason(env)
        for seed in seeds:
            if not table.takes_algos:
                for mode in ("td_mpc", "iql_td_mpc"):
                    others.append(Cell(env, seed, (mode,), "flat", run_dir(env, (mode,), seed),
                                       trainer_command(mode, env, seed, opt), unavailable=env_reason,
                                       stack_group=stack_group(env, mode)))
                continue
            manager_key = None
            if table.needs_manager:
                manager = Cell(env, seed, ("manager",), "manager", run_dir(env, ("manager",), seed),
                               trainer_command("manager", env, seed, opt), unavailable=env_reason,
                               stack_group=stack_group(env, "manager"))
                managers.append(manager)
                manager_key = manager.key
            for algo in algos:
                reason = env_reason or catalog.worker_unavailable_reason(algo)
                for intent in ("none", table.ours_intent):
                    arm = (algo, intent)
                    depends = (manager_key,) if intent == "manager" else ()
                    others.append(Cell(env, seed, arm, "worker", run_dir(env, arm, seed),
                                       worker_command(algo, intent, env, seed, opt), depends, reason))
    return managers + others
