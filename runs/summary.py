"""python -m runs summary RUN_DIR... [--alpha 0.05]

Final scores of hand-started runs, as the grids report theirs: run folders that differ only in their
seed<k> part are one line, with the D4RL normalised score's mean ± sample std over the seeds (final.json)
and each seed's score; every other line is compared with the FIRST line given by Welch's t-test (↑ / ↓
where p < alpha). Unfinished runs are named with how far they have logged and left out.

    python -m runs summary runs/maze2d-medium-v1/bc/none/seed* runs/maze2d-medium-v1/bc/manager/seed*
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.cli import config_field as field
from common.cli import parse_config
from common.errors import INPUT_ERRORS, report_input_error
from common.run_dir import describe_unfinished
from runs.aggregate import ALPHA, NOT_TESTED, welch_test
from runs.run_groups import group_by_seed


@dataclass
class SummaryConfig:
    run_dirs: list[str] = field(None, "run folders, e.g. runs/<env>/bc/none/seed* runs/<env>/bc/manager/seed*; the "
                                      "first line given is the baseline of the tests", positional=True, nargs="+")
    alpha: float = field(ALPHA, "significance threshold of Welch's t-test")


def read_final(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((run_dir / "final.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{run_dir / 'final.json'} is unreadable ({exc}); redo that run with the command that "
                         "made it and --overwrite, or leave the folder out") from None


def unfinished_note(run_dir: Path) -> str:
    return f"not finished, left out: {run_dir} ({describe_unfinished(run_dir)})"


def summary_lines(groups: dict[str, list[dict[str, Any]]], alpha: float) -> list[str]:
    """The markdown table: one row per line of seeds, tested against the first line."""
    lines = ["| run | seeds | steps | episodes | normalised score (mean ± sample std) | vs first line (Welch) "
             "| per seed |", "| --- | --- | --- | --- | --- | --- | --- |"]
    baseline = None
    for label, finals in groups.items():
        scores = [float(f["normalized_score"]) for f in finals]
        spread = f"{np.std(scores, ddof=1):.1f}" if len(scores) > 1 else "n/a"
        steps = ", ".join(f"{s:,}" for s in sorted({int(f.get("steps", 0)) for f in finals}))
        episodes = ", ".join(str(e) for e in sorted({f.get("eval_episodes") for f in finals} - {None}))
        if baseline is None:
            baseline, versus = scores, "baseline"
        else:
            test = welch_test(baseline, scores, alpha)
            versus = test.note if test.verdict == NOT_TESTED else f"p {test.p_text()}{test.marker()}"
        per_seed = ", ".join(f"{f.get('seed', '?')}: {float(f['normalized_score']):.1f}" for f in finals)
        lines.append(f"| {label} | {len(scores)} | {steps} | {episodes} | {np.mean(scores):.1f} ± {spread} | "
                     f"{versus} | {per_seed} |")
    return lines


def summarize(cfg: SummaryConfig) -> list[str]:
    if not 0 < cfg.alpha < 1:
        raise ValueError(f"--alpha is a significance threshold between 0 and 1 (e.g. 0.05), got {cfg.alpha:g}")
    run_dirs = [Path(d) for d in cfg.run_dirs]
    missing = [str(d) for d in run_dirs if not d.is_dir()]
    if missing:
        raise ValueError(f"no run folder at {', '.join(missing[:3])}: give folders such as "
                         "runs/<env>/<algo>/<intent>/seed0")
    groups: dict[str, list[dict[str, Any]]] = {}
    for label, dirs in group_by_seed(run_dirs).items():
        for run_dir in dirs:
            final = read_final(run_dir)
            if final is None or "normalized_score" not in final:
                print(unfinished_note(run_dir), file=sys.stderr)
            else:
                groups.setdefault(label, []).append(final)
    if not groups:
        raise ValueError("none of these runs has finished (no final.json with a normalized_score): wait for them, "
                         "or give finished run folders")
    return summary_lines(groups, cfg.alpha)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(SummaryConfig, "python -m runs summary", __doc__.split("\n\n", 1)[1], argv)
    try:
        lines = summarize(cfg)
    except INPUT_ERRORS as exc:
        return report_input_error(exc)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
