"""runs/table<N>.png: learning curves per dataset (rows) and column (workers, or the flat agents),
baseline and ours, mean ± std over seeds, from each run's metrics.csv (eval_normalized_score).
Runs that log no evaluation during training (the flat agents) are drawn as their final scores.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from common.atomic import atomic_path  # noqa: E402
from runs.aggregate import TableResult, learning_curve  # noqa: E402
from runs.grid import Cell  # noqa: E402

COLORS = {"baseline": "tab:gray", "ours": "tab:blue"}


def _final_points(cells: list[Cell]) -> tuple[list[int], list[float]]:
    steps, scores = [], []
    for cell in cells:
        try:
            final = json.loads(cell.final_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if "normalized_score" in final:
            steps.append(int(final.get("steps", 0)))
            scores.append(float(final["normalized_score"]))
    return steps, scores


def _draw_arm(ax, cells: list[Cell], label: str, color: str) -> bool:
    curve = learning_curve(cells)
    if curve is not None:
        ax.plot(curve.steps, curve.mean, color=color, label=label, lw=1.5, marker="o", ms=2)
        ax.fill_between(curve.steps, curve.mean - curve.std, curve.mean + curve.std, color=color, alpha=0.2, lw=0)
        return True
    steps, scores = _final_points(cells)
    if scores:
        ax.scatter(steps, scores, color=color, label=f"{label} (final)", s=14)
        return True
    return False


def write_plot(result: TableResult, cells: list[Cell], path: Path) -> Path:
    by_arm: dict[tuple, list[Cell]] = {}
    for cell in cells:
        by_arm.setdefault((cell.env, cell.arm), []).append(cell)
    rows, cols = len(result.envs), len(result.columns)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.4 * rows), squeeze=False)
    t = result.table
    for i, env in enumerate(result.envs):
        for j, column in enumerate(result.columns):
            ax = axes[i][j]
            entry = result.entry(env, column.label)
            ax.set_title(f"{env}\n{column.label}", fontsize=8)
            ax.tick_params(labelsize=7)
            drawn = _draw_arm(ax, by_arm.get((env, column.baseline), []), t.baseline_label, COLORS["baseline"])
            drawn |= _draw_arm(ax, by_arm.get((env, column.ours), []), t.ours_label, COLORS["ours"])
            if drawn:
                ax.legend(fontsize=6, loc="best")
                ax.set_xlabel("training step", fontsize=7)
                ax.set_ylabel("normalised score", fontsize=7)
            else:
                reason = entry.baseline.unavailable or entry.ours.unavailable
                ax.text(0.5, 0.5, f"unavailable:\n{reason}" if reason else "no results yet", ha="center",
                        va="center", fontsize=7, transform=ax.transAxes, wrap=True)
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle(t.title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # tight: the image widens to the title where one column is narrower
        fig.savefig(tmp, format="png", dpi=72, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return Path(path)
