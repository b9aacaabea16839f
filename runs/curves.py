"""python -m runs curves RUN_DIR... [--metrics eval_normalized_score,critic] [--out curves.png]

Learning curves of any runs from their metrics.csv alone (no W&B account): one panel per metric, one
line per group of seeds (run folders that differ only in their seed<k> part, e.g. the five seeds of
runs/maze2d-medium-v1/bc/manager), mean ± std over the seeds at the steps they logged. Without
--metrics: the evaluation score where any run logs one (the workers), otherwise every logged loss and
diagnostic (the Manager, flat agents: they are scored once, at the end). Runs still training are drawn up to their last
row. Writes one PNG (atomically) and prints each line's last mean.
"""
from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from common.atomic import atomic_path  # noqa: E402
from common.cli import config_field as field  # noqa: E402
from common.cli import parse_config  # noqa: E402
from common.errors import INPUT_ERRORS, report_input_error  # noqa: E402
from runs.aggregate import Curve, curve_over_seeds, read_metric  # noqa: E402
from runs.run_groups import group_by_seed  # noqa: E402

EVAL_METRIC = "eval_normalized_score"
# columns that are not learning curves: the step itself, throughput, evaluation by-products
NOT_CURVES = re.compile(r"^(step|steps_per_s|eval_.*|.*_wall_s)$")


@dataclass
class CurvesConfig:
    run_dirs: list[str] = field(None, "run folders with a metrics.csv, e.g. runs/maze2d-medium-v1/bc/*/seed*; "
                                      "folders differing only in seed<k> are one line", positional=True, nargs="+")
    metrics: str = field("", "comma-separated metrics.csv columns to draw (default: eval_normalized_score where "
                             "logged, else every loss and diagnostic column)")
    out: str = field("curves.png", "the PNG to write")


def metric_columns(metrics_path: Path) -> list[str]:
    try:
        with open(metrics_path, newline="") as f:
            return next(csv.reader(f), [])
    except OSError:
        return []


def default_metrics(run_dirs: list[Path]) -> list[str]:
    """eval_normalized_score where any run logged one; else the loss and diagnostic columns, in file order."""
    if any(read_metric(d / "metrics.csv", EVAL_METRIC) for d in run_dirs):
        return [EVAL_METRIC]
    columns: list[str] = []
    for run_dir in run_dirs:
        columns += [c for c in metric_columns(run_dir / "metrics.csv") if not NOT_CURVES.match(c) and c not in columns]
    return columns


def check_run_dirs(run_dirs: list[Path]) -> None:
    missing = [str(d) for d in run_dirs if not (d / "metrics.csv").is_file()]
    if missing:
        raise ValueError(f"no metrics.csv in {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}: give run "
                         "folders such as runs/<env>/<algo>/<intent>/seed0 (a run writes metrics.csv at its first "
                         "log row)")


def collect_curves(groups: dict[str, list[Path]], metrics: list[str]) -> dict[str, dict[str, Curve]]:
    """metric -> label -> the group's curve (groups that never logged the metric are left out)."""
    curves: dict[str, dict[str, Curve]] = {}
    for metric in metrics:
        for label, dirs in groups.items():
            curve = curve_over_seeds([read_metric(d / "metrics.csv", metric) for d in dirs])
            if curve is not None:
                curves.setdefault(metric, {})[label] = curve
    return curves


def draw(curves: dict[str, dict[str, Curve]], out: Path) -> Path:
    panels = len(curves)
    cols = min(panels, 3)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (metric, lines) in zip(axes.flat, curves.items()):
        for label, curve in lines.items():
            seeds = int(curve.count.max())
            few = len(curve.steps) < 20  # markers, so that a run evaluated once (the CPU demo) shows a point
            line, = ax.plot(curve.steps, curve.mean, lw=1.3, marker="o" if few else None, ms=3,
                            label=f"{label} ({seeds} seed{'s' * (seeds > 1)})")
            ax.fill_between(curve.steps, curve.mean - curve.std, curve.mean + curve.std, color=line.get_color(),
                            alpha=0.2, lw=0)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best")
    for ax in list(axes.flat)[panels:]:
        ax.set_visible(False)
    fig.suptitle("mean ± std over seeds", fontsize=9)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return out


def plot_curves(cfg: CurvesConfig) -> dict[str, dict[str, Curve]]:
    run_dirs = [Path(d) for d in cfg.run_dirs]
    check_run_dirs(run_dirs)
    metrics = [m.strip() for m in cfg.metrics.split(",") if m.strip()] or default_metrics(run_dirs)
    curves = collect_curves(group_by_seed(run_dirs), metrics)
    absent = [m for m in metrics if m not in curves]
    if not curves or absent:
        known = sorted({c for d in run_dirs for c in metric_columns(d / "metrics.csv")} - {"step"})
        raise ValueError(f"no values of {', '.join(absent or metrics)} in these runs' metrics.csv; their columns: "
                         f"{', '.join(known)}")
    draw(curves, Path(cfg.out))
    return curves


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(CurvesConfig, "python -m runs curves", __doc__.split("\n\n", 1)[1], argv)
    try:
        curves = plot_curves(cfg)
    except INPUT_ERRORS as exc:
        return report_input_error(exc)
    for metric, lines in curves.items():
        for label, curve in lines.items():
            print(f"{metric} {label}: {curve.mean[-1]:.4g} at step {int(curve.steps[-1])} "
                  f"(mean of {int(curve.count[-1])} seed(s))")
    print(f"wrote {cfg.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
