"""python -m manager train ...: train the Manager or a flat agent (IQL-TD-MPC, TD-MPC).

  python -m manager train --mode manager --env maze2d-umaze-v1 [--profile quick] [--steps N]
  python -m manager train --mode iql_td_mpc --env maze2d-umaze-v1 --set horizon=3 --set lr=1e-4
  python -m manager train --mode manager --env maze2d-medium-v1 --seeds 0,1,2   (3 seeds, one process)
  python -m manager config --mode manager --env antmaze-large-play-v2     (print the resolved config)
  python -m manager evaluate runs/maze2d-umaze-v1/iql_td_mpc/seed0 --episodes 100   (score a flat agent again)

--set KEY=VALUE overrides any agent field (see `python -m manager config`); defaults are the
paper's Tables 6-8, adjusted per task (reward scale, antmaze critic loss) and per profile.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import typing

import yaml

from common.cli import VALUE_KINDS, add_config_arguments, config_from_args, parse_seeds
from common.errors import INPUT_ERRORS, report_input_error
from manager.config import MODES, AgentConfig
from manager.stacked_training import SeedsDiverged, train_stacked
from manager.trainer import TrainConfig, Trainer, resolve


def parse_overrides(items: list[str], mode: str) -> dict[str, typing.Any]:
    """`key=value` strings -> typed agent-config overrides (an unknown key is named with its close
    match; a value of the wrong kind with the kind the field takes)."""
    hints = typing.get_type_hints(MODES[mode])
    out: dict[str, typing.Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in hints:
            known = [f.name for f in dataclasses.fields(AgentConfig)]
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if sep and close else ""
            raise ValueError(f"--set {item!r}: expected KEY=VALUE{hint} with KEY one of: {', '.join(known)}")
        read, kind = VALUE_KINDS[hints[key]]
        try:
            out[key] = read(value)
        except ValueError:
            raise ValueError(f"--set {item}: {key} takes {kind}") from None
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m manager", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("train", "train (or resume) a run; prints final.json's contents"),
                            ("config", "print the resolved configs of a run without training")):
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_config_arguments(p, TrainConfig)
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override an agent config field (repeatable)")
    sub.add_parser("evaluate", help="score a trained flat agent again from its checkpoint "
                                    "(python -m manager evaluate --help)", add_help=False)
    return parser


def print_results(results: list[dict | None]) -> None:
    """key=value lines of each finished run's final.json (runs stopped early have none)."""
    for result in results:
        if result is not None:
            for key, value in result.items():
                print(f"{key}={value}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["evaluate"]:  # its own options (common/evaluations.py): python -m manager evaluate --help
        from manager.evaluate import main as evaluate_main

        return evaluate_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        train_cfg = config_from_args(TrainConfig, args)
        if train_cfg.seeds and any(a == "--seed" or a.startswith("--seed=") for a in argv):
            raise ValueError("give --seed K (one run) or --seeds 0,1,2 (several, stacked in one process), not both")
        run = resolve(train_cfg, parse_overrides(args.overrides, train_cfg.mode))
        if args.command == "config":
            print(yaml.safe_dump({"train": dataclasses.asdict(run.train), "agent": dataclasses.asdict(run.agent),
                                  "profile": run.profile, "steps": run.steps, "device": str(run.device)},
                                 sort_keys=False))
            return 0
        if train_cfg.seeds:
            results = train_stacked(run, parse_seeds(train_cfg.seeds))
        else:
            results = [Trainer(run).train()]
        print_results(results)
        return 0
    except SeedsDiverged as exc:  # the seeds that did not diverge finished: report them, then the error
        print_results(exc.results)
        return report_input_error(exc)
    except INPUT_ERRORS as exc:
        return report_input_error(exc)


if __name__ == "__main__":
    sys.exit(main())
