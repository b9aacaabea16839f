"""python -m runs table1|table2|table3 [--envs ...] [--algos ...] [--seeds 0,1,2,3,4] [--profile ...] [--jobs N]

Runs one of the paper's grids, then writes <runs-dir>/table<N>.md, .csv and .png.

  table1  flat agents TD-MPC → IQL-TD-MPC on the paper's 14 datasets (IQL / TT / TAP: published only)
  table2  the six CORL workers without → with the Manager's intents, 14 datasets; one Manager per
          dataset and seed, trained first and shared by the workers of that dataset and seed
  table3  four workers without → with random intents, on the 7 datasets of the paper's ablation

Every cell is the command `make manager` / `make flat` / `make worker` runs, in its own run folder
runs/<env>/<...>/seed<k>/ with manifest.json and cell.log. Finished cells (final.json) are skipped;
failed or interrupted ones run again and resume from their checkpoints: re-run the same command after
a crash or Ctrl-C. Cells whose task or worker does not exist yet are shown as unavailable. See
docs/tables.md.

python -m runs curves RUN_DIR... [--metrics ...] [--out curves.png]: learning curves of any runs from
their metrics.csv, mean ± std over seeds (`python -m runs curves --help`).
python -m runs summary RUN_DIR...: their final scores, mean ± std over seeds, Welch's test against the
first line given (`python -m runs summary --help`).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections import Counter
from dataclasses import dataclass

from common.cli import COMPILE_MODES, add_config_arguments, check_minimums, compile_kwargs, config_from_args
from common.cli import config_field as field
from common.device import DEVICE_HELP, check_device_name, resolve_device
from common.errors import INPUT_ERRORS, report_input_error
from common.file_lock import describe_holder, last_holder
from common.run_dir import RUN_LOCK_NAME, logged_progress
from runs import manifest as m
from runs.aggregate import ALPHA, aggregate
from runs.claims import in_training
from runs.engines import make_engine
from runs.execute import REPO_ROOT, CellJob, repo_provenance
from runs.grid import (Cell, GridOptions, expand_grid, parse_seeds, resolve_algos, resolve_envs, split_names,
                       stacked_command)
from runs.plots import write_plot
from runs.report import profile_warning, write_reports
from runs.scheduler import run_grid
from runs.tables import TABLES, get_table


@dataclass
class TablesConfig:
    table: str = field("table2", "which grid: table1 | table2 | table3", positional=True, choices=tuple(TABLES))
    envs: str = field("", "comma-separated datasets, or a domain (maze2d, antmaze, halfcheetah); default: the "
                          "table's datasets as in the paper")
    algos: str = field("", "comma-separated workers (table2/3); default: the paper's (table2: awac,bc,dt,iql,"
                           "td3_bc,cql; table3: awac,bc,iql,td3_bc)")
    seeds: str = field("0,1,2,3,4", "comma-separated seeds or a range such as 0-4")
    profile: str = field("auto", "paper | quick | smoke | auto (paper on a GPU, quick on a CPU), passed to every cell",
                         choices=("auto", "paper", "quick", "smoke"))
    device: str = field("auto", f"{DEVICE_HELP}; passed to every cell")
    jobs: int = field(1, "cells running at once (dependencies respected; a stacked job counts once)")
    stack_seeds: bool = field(False, "train an env's Managers (table2) or flat agents (table1) of all due seeds in "
                                     "one process, parameters stacked on a seed axis (python -m manager train "
                                     "--seeds): fewer, fuller kernel launches on a GPU; each seed keeps its own "
                                     "run folder, manifest and final.json (docs/tables.md)")
    compile: bool = field(False, "Manager and flat-agent cells torch.compile their update and planner (python -m "
                                 "manager train --compile): 1.3-1.5x faster updates on a GPU, 5.9x with "
                                 "--stack-seeds for 5 seeds (docs/manager.md); a compiled run resumes compiled; "
                                 "worker cells compile their update too (python -m corl ALGO --compile true; "
                                 "docs/workers.md)")
    compile_mode: str = field("default", "with --compile, torch.compile's mode for those cells: default | "
                                         "reduce-overhead (CUDA graphs: 3.8x eager on an H200, 11.8x with "
                                         "--stack-seeds for 5 seeds) | max-autotune | max-autotune-no-cudagraphs",
                              choices=COMPILE_MODES)
    wandb: bool = field(False, "every training cell also logs to Weights & Biases (offline mode unless WANDB_MODE "
                               "says otherwise; python -m manager train --wandb, python -m corl ALGO --wandb true)")
    runs_dir: str = field("runs", "root of the run folders; the tables are written here too")
    data_dir: str = field("", "folder searched first for datasets (passed to every cell)")
    engine: str = field("local", "local: processes on this machine | submitit: one submitit job per cell "
                                 "(SLURM, or its local executor)", choices=("local", "submitit"))
    aggregate_only: bool = field(False, "run nothing: only write the tables from the runs there are")
    rescored_episodes: int = field(0, "score each finished run by its re-scoring with this many episodes "
                                      "(python -m corl|manager evaluate RUN_DIR --episodes N) instead of its "
                                      "final.json; 0: final.json")
    dry_run: bool = field(False, "print every cell's state and command, run nothing, write nothing")
    alpha: float = field(ALPHA, "significance threshold of Welch's t-test (two-sided p < alpha)")
    gpus: str = field("", "local engine: comma-separated GPU ids to spread cells over (CUDA_VISIBLE_DEVICES, "
                          "one per cell, least busy first); empty: cells see every GPU")
    submitit_cluster: str = field("auto", "submitit engine: auto (SLURM when present) | slurm | local | debug",
                                  choices=("auto", "slurm", "local", "debug"))
    timeout_min: int = field(1440, "submitit engine: time limit of one cell's job in minutes")
    gpus_per_cell: int = field(-1, "submitit engine: GPUs per cell job (-1: 0 with --device cpu, else 1)")
    cpus_per_cell: int = field(0, "submitit engine: CPUs per cell job (0: the cluster's default)")
    mem_gb: float = field(0.0, "submitit engine: memory per cell job in GB (0: the cluster's default)")
    partition: str = field("", "submitit engine: SLURM partition (empty: the cluster's default)")
    heartbeat_s: float = field(30.0, "seconds between manifest heartbeats of a running cell")
    stale_after_s: float = field(m.STALE_AFTER_S, "a running cell of another host whose heartbeat is older than "
                                                  "this is treated as interrupted and run again")


# the least value of each count and limit (0: the cluster's default)
GRID_MINIMUMS = {"jobs": 1, "timeout_min": 1, "gpus_per_cell": -1, "cpus_per_cell": 0, "mem_gb": 0,
                 "heartbeat_s": 0.1, "stale_after_s": 1, "rescored_episodes": 0}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser, TablesConfig)
    return parser


def command_environment(cfg: TablesConfig) -> dict[str, str]:
    """Variables set for every cell: this repository importable; with JOBS local cells on the CPU,
    torch's threads shared out (unless the user set them)."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {"PYTHONPATH": os.pathsep.join(dict.fromkeys([str(REPO_ROOT), *paths]))}
    if cfg.engine == "local" and cfg.jobs > 1:
        threads = str(max(1, (os.cpu_count() or 1) // cfg.jobs))
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            if name not in os.environ:
                env[name] = threads
    return env


def check_grid_device(cfg: TablesConfig) -> None:
    """A --device every cell would refuse stops the grid before any cell runs. With the local engine
    the device must exist on this machine too (submitit's cells may run on other machines)."""
    check_device_name(cfg.device)
    if cfg.engine != "local" or cfg.aggregate_only:
        return
    resolve_device(cfg.device)
    if cfg.gpus and cfg.device.startswith("cuda:") and cfg.device != "cuda:0":
        raise ValueError(f"--device {cfg.device} with --gpus: each cell sees only the one GPU it is given, as "
                         "cuda:0; use --device cuda")


STATE_ORDER = (m.DONE, m.RUNNING, m.INTERRUPTED, m.FAILED, m.MISSING, m.UNAVAILABLE)


def print_dry_run(cells: list[Cell], cfg: TablesConfig, options: GridOptions) -> None:
    """Every cell's state and command; a stack group's cells that need a run show their one command."""
    states = {cell.key: m.cell_state(cell, cfg.stale_after_s) for cell in cells}
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        if cell.stack_group is not None and states[cell.key] in m.NEEDS_RUN:
            groups.setdefault(cell.stack_group, []).append(cell)
    for cell in cells:
        extra = f"  [{cell.unavailable}]" if cell.unavailable else (
            f"  [after {', '.join(cell.depends_on)}]" if cell.depends_on else "")
        group = groups.get(cell.stack_group or "", [])
        command = stacked_command(group, options) if cell in group and len(group) > 1 else cell.command
        if cell in group and len(group) > 1:
            extra += f"  [stacked: seeds {','.join(str(c.seed) for c in group)} in one process]"
        progress = logged_progress(cell.run_dir) if states[cell.key] != m.DONE else None
        if progress:
            extra += f"  [logged to step {progress[0]} of {progress[1]}]"
        if states[cell.key] in m.NEEDS_RUN and (cell.run_dir / "checkpoint.pt").is_file():
            extra += "  [resumes from its checkpoint.pt]"
        if in_training(cell.run_dir):  # e.g. started by hand: the grid would wait for it
            extra += f"  [in use by {describe_holder(last_holder(cell.run_dir / RUN_LOCK_NAME))}]"
        print(f"{states[cell.key]:12s} {cell.key}{extra}\n             {shlex.join(command)}")
    counts = Counter(states.values())
    print(f"[grid] {len(cells)} cells: " + ", ".join(f"{counts[state]} {state}" for state in STATE_ORDER if counts[state]))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["curves"]:  # its own options: python -m runs curves --help
        from runs.curves import main as curves_main

        return curves_main(argv[1:])
    if argv[:1] == ["summary"]:  # its own options: python -m runs summary --help
        from runs.summary import main as summary_main

        return summary_main(argv[1:])
    if argv and not argv[0].startswith("-") and argv[0] not in TABLES:
        return report_input_error(ValueError(f"unknown command {argv[0]!r}; choose one of "
                                             f"{', '.join(TABLES)}, curves, summary (python -m runs --help)"))
    cfg = config_from_args(TablesConfig, build_parser().parse_args(argv))
    try:
        table = get_table(cfg.table)
        envs, algos, seeds = resolve_envs(table, cfg.envs), resolve_algos(table, cfg.algos), parse_seeds(cfg.seeds)
        check_minimums(cfg, GRID_MINIMUMS)
        if not 0 < cfg.alpha < 1:
            raise ValueError(f"--alpha is a significance threshold between 0 and 1 (e.g. 0.05), got {cfg.alpha:g}")
        compile_kwargs(cfg.compile, cfg.compile_mode)  # a mode without --compile fails before any cell runs
        check_grid_device(cfg)
        options = GridOptions(cfg.profile, cfg.device, cfg.runs_dir, cfg.data_dir or None, stack_seeds=cfg.stack_seeds,
                              compile=cfg.compile, compile_mode=cfg.compile_mode, wandb=cfg.wandb)
        cells = expand_grid(table, envs, algos, seeds, options)
        unavailable = sum(1 for c in cells if c.unavailable)
        print(f"[grid] {table.name}: {len(envs)} datasets x {max(len(algos), 1)} column(s) x {len(seeds)} seeds: "
              f"{len(cells)} cells ({unavailable} unavailable); profile {cfg.profile}, device {cfg.device}, "
              f"runs in {cfg.runs_dir}")
        if cfg.dry_run:
            print_dry_run(cells, cfg, options)
            return 0
        grid = None
        if not cfg.aggregate_only:
            engine = make_engine(
                cfg.engine, gpus=split_names(cfg.gpus),
                folder=os.path.join(cfg.runs_dir, "_submitit"), cluster=cfg.submitit_cluster,
                timeout_min=cfg.timeout_min,
                gpus_per_cell=cfg.gpus_per_cell if cfg.gpus_per_cell >= 0 else int(cfg.device != "cpu"),
                cpus_per_cell=cfg.cpus_per_cell or None, mem_gb=cfg.mem_gb or None, partition=cfg.partition or None)
            git, env = repo_provenance(), command_environment(cfg)
            shared = {"table": table.name, "profile": cfg.profile, "device": cfg.device, "runs_dir": cfg.runs_dir,
                      "data_dir": cfg.data_dir or None, "jobs": cfg.jobs}

            def make_job(job_cells: tuple[Cell, ...]) -> CellJob:
                """One cell's job, or a stack group's (its seeds in one command; each manifest names its cell)."""
                cell, stacked = job_cells[0], len(job_cells) > 1
                seeds = {"seeds": [c.seed for c in job_cells]} if stacked else {"seed": cell.seed}
                config = {**shared, "env": cell.env, **seeds, "arm": list(cell.arm), "kind": cell.kind}
                command = stacked_command(job_cells, options) if stacked else cell.command
                return CellJob(cell.key, command, str(cell.run_dir), os.getcwd(), env, config, git, engine.name,
                               cfg.heartbeat_s,
                               stacked_with=tuple((c.key, str(c.run_dir)) for c in job_cells[1:]))

            grid = run_grid(cells, engine, cfg.jobs, make_job, stale_after_s=cfg.stale_after_s)
            print(f"[grid] {grid.summary()}")
        result = aggregate(table, cells, envs, algos, seeds, cfg.alpha, cfg.stale_after_s, cfg.rescored_episodes)
        plot = write_plot(result, cells, os.path.join(cfg.runs_dir, f"{table.name}.png"))
        md, csv_path = write_reports(result, cfg.runs_dir, cfg.alpha, "python -m runs " + shlex.join(argv), plot.name,
                                     cfg.profile)
        if warning := profile_warning(result, cfg.profile):
            print(f"[grid] warning: {warning}", file=sys.stderr)
        print(f"[grid] wrote {md}, {csv_path}, {plot}")
        return 1 if grid is not None and grid.failed else 0
    except (*INPUT_ERRORS, RuntimeError) as exc:  # RuntimeError: a grid cell's or engine's failure, named
        return report_input_error(exc)
    except KeyboardInterrupt:
        print("[grid] interrupted; run the same command again to resume (finished cells are kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
