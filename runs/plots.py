"""runs/table<N>.png: learning curves per dataset (rows) and column (workers, or the flat agents),
baseline and ours, mean ± std over seeds, from each run's metrics.csv (eval_normalized_score).
Where neither arm logs evaluations during training (the flat agents), the panel shows both arms' final
scores side by side instead.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from common.atomic import atomic_path  # noqa: E402
from runs.aggregate import ArmSummary, Entry, TableResult, learning_curve  # noqa: E402
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


def _draw_curve(ax, cells: list[Cell], label: str, color: str) -> bool:
    curve = learning_curve(cells)
    if curve is None:
        return False
    ax.plot(curve.steps, curve.mean, color=color, label=label, lw=1.5, marker="o", ms=2)
    ax.fill_between(curve.steps, curve.mean - curve.std, curve.mean + curve.std, color=color, alpha=0.2, lw=0)
    return True


def _draw_finals(ax, arms: list[tuple[ArmSummary, list[Cell], str, str]]) -> bool:
    """Final scores side by side, one x position per arm: a dot per seed, the table's mean ± std as a bar.
    For arms that log no evaluation during training (the flat agents), whose final scores all sit at one step."""
    labels, all_steps = [], set()
    for x, (summary, cells, label, color) in enumerate(arms):
        labels.append(label)
        if not summary.values:
            continue
        all_steps.update(_final_points(cells)[0])
        offsets = np.linspace(-0.12, 0.12, summary.n) if summary.n > 1 else np.zeros(1)  # seeds side by side
        ax.scatter(x + offsets, summary.values, color=color, s=14, alpha=0.7, zorder=2)
        ax.errorbar([x + 0.25], [summary.mean], yerr=[summary.std or 0.0], fmt="_", color="black", ms=10,
                    capsize=3, zorder=3)
    if not all_steps:
        return False
    ax.set_xticks(range(len(arms)), labels)
    ax.set_xlim(-0.5, len(arms) - 0.5)
    ax.set_xlabel(f"after {', '.join(f'{s:,}' for s in sorted(all_steps))} steps; dots: seeds, bar: mean ± std",
                  fontsize=7)
    return True


def draw_panel(ax, entry: Entry, baseline: list[Cell], ours: list[Cell], baseline_label: str,
               ours_label: str) -> bool:
    """One dataset x column: learning curves, mean ± std over seeds, where either arm logged evaluations;
    else both arms' final scores (the table entry's) side by side. False if nothing to draw."""
    arms = [(entry.baseline, baseline, baseline_label, COLORS["baseline"]),
            (entry.ours, ours, ours_label, COLORS["ours"])]
    drawn = [_draw_curve(ax, cells, label, color) for _, cells, label, color in arms]
    if any(drawn):
        for (_, cells, label, color), curve_drawn in zip(arms, drawn):
            steps, scores = ([], []) if curve_drawn else _final_points(cells)
            if scores:  # a run without logged evaluations beside one with them: its final scores at their step
                ax.scatter(steps, scores, color=color, label=f"{label} (final)", s=14)
        ax.legend(fontsize=6, loc="best")
        ax.set_xlabel("training step", fontsize=7)
    elif not _draw_finals(ax, arms):
        return False
    ax.set_ylabel("normalised score", fontsize=7)
    return True


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
            if not draw_panel(ax, entry, by_arm.get((env, column.baseline), []), by_arm.get((env, column.ours), []),
                              t.baseline_label, t.ours_label):
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
