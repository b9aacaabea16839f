"""Aggregation of a grid's run folders: per arm (one side of an entry) the final normalised scores
over seeds, mean +- std, the state of every seed; per entry Welch's t-test; learning curves from
metrics.csv; and the provenance (git commits, devices, profiles) from the manifests.

Conventions: std is the sample standard deviation over seeds (ddof=1); Welch's t-test is
scipy.stats.ttest_ind(ours, baseline, equal_var=False), two-sided, computed only with >= 2 seeds on
each side; an entry is a significant gain (loss) when p < alpha and ours' mean is higher (lower).
When both sides have zero variance the test is defined here: p = 1 for equal means, 0 otherwise.
"""
from __future__ import annotations

import csv
import json
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from runs import manifest as m
from runs.grid import Cell
from runs.paper import Published, published
from runs.tables import Column, TableSpec

ALPHA = 0.05
GAIN, LOSS, NO_CHANGE, NOT_TESTED = "gain", "loss", "no significant change", "n/a"


@dataclass
class ArmSummary:
    """One side of an entry (e.g. bc without intents on maze2d-umaze-v1) over the requested seeds."""
    env: str
    arm: tuple[str, ...]
    seeds: tuple[int, ...]
    scores: dict[int, float] = field(default_factory=dict)   # seed -> final normalised score (done seeds)
    states: dict[int, str] = field(default_factory=dict)     # seed -> cell state (manifest.py)
    unavailable: str | None = None

    @property
    def values(self) -> list[float]:
        return [self.scores[s] for s in sorted(self.scores)]

    @property
    def n(self) -> int:
        return len(self.scores)

    @property
    def done(self) -> int:
        """Seeds whose run finished (Manager runs finish without a score)."""
        return sum(1 for state in self.states.values() if state == m.DONE)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if self.n >= 2 else None

    def state_counts(self) -> Counter:
        return Counter(self.states.values())

    def progress(self) -> str:
        """'3/5 seeds' plus what the others are: '3/5 seeds; 1 failed, 1 missing'."""
        others = {k: v for k, v in self.state_counts().items() if k != m.DONE}
        text = f"{self.done}/{len(self.seeds)} seeds"
        return text + ("; " + ", ".join(f"{v} {k}" for k, v in sorted(others.items())) if others else "")

    def score_text(self) -> str:
        """'62.1 ± 4.0', '62.1 (1 seed)', 'unavailable', or the states when nothing finished."""
        if self.unavailable:
            return "unavailable"
        if self.mean is None:
            counts = self.state_counts()
            return ", ".join(f"{k}" for k in sorted(counts)) or "missing"
        return f"{self.mean:.1f} ± {self.std:.1f}" if self.std is not None else f"{self.mean:.1f} (1 seed)"


@dataclass(frozen=True)
class WelchResult:
    t: float | None
    p: float | None
    verdict: str            # gain | loss | no significant change | n/a
    note: str = ""

    def marker(self) -> str:
        return {GAIN: " ↑", LOSS: " ↓"}.get(self.verdict, "")

    def p_text(self) -> str:
        return "n/a" if self.p is None else (f"{self.p:.3g}" if self.p >= 1e-4 else f"{self.p:.1e}")


def welch_test(baseline: list[float], ours: list[float], alpha: float = ALPHA) -> WelchResult:
    if len(baseline) < 2 or len(ours) < 2:
        return WelchResult(None, None, NOT_TESTED, "needs >= 2 seeds on each side")
    b, o = np.asarray(baseline, dtype=np.float64), np.asarray(ours, dtype=np.float64)
    if np.ptp(b) == 0 and np.ptp(o) == 0:
        same = bool(b[0] == o[0])
        t, p = (0.0, 1.0) if same else (math.copysign(math.inf, o[0] - b[0]), 0.0)
        note = "both sides constant"
    else:
        with warnings.catch_warnings():  # scipy warns when one side is constant; the test is still defined
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ttest_ind(o, b, equal_var=False)
        t, p, note = float(res.statistic), float(res.pvalue), ""
    verdict = (GAIN if o.mean() > b.mean() else LOSS) if p < alpha else NO_CHANGE
    return WelchResult(t, p, verdict, note)


@dataclass
class Entry:
    """One entry of a table: a dataset x a column, "baseline -> ours"."""
    env: str
    column: Column
    baseline: ArmSummary
    ours: ArmSummary
    welch: WelchResult
    paper_baseline: Published | None
    paper_ours: Published | None


@dataclass
class TableResult:
    table: TableSpec
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    columns: list[Column]
    entries: list[Entry]
    managers: dict[str, ArmSummary]            # env -> the Manager cells (Table 2)
    cell_states: Counter                       # state -> number of cells in the grid
    failed_cells: list[tuple[str, str]]        # (key, log path / last error) of failed or interrupted cells
    commits: Counter                           # "abc1234" / "abc1234 (dirty)" -> cells
    devices: Counter                           # "cuda (NVIDIA H100)" / "cpu" -> cells
    profiles: Counter                          # profile in final.json -> cells
    steps: Counter                             # "workers, intent none: 500000" -> cells
    published_other: dict[str, dict[str, Published]] = field(default_factory=dict)  # env -> IQL/TT/TAP (Table 1)
    rescored_episodes: int = 0                 # >0: scores from evaluations/episodes<N>_seed<k>.json, not final.json

    def entry(self, env: str, label: str) -> Entry:
        return next(e for e in self.entries if e.env == env and e.column.label == label)


def read_final(cell: Cell) -> dict | None:
    try:
        return json.loads(cell.final_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


NOT_RESCORED = "not re-scored"  # a finished cell without the re-scoring the table asks for (--rescored-episodes)


def rescored_score(cell: Cell, episodes: int) -> float | None:
    """The normalised score of the cell's re-scoring with `episodes` episodes at its own seed
    (`python -m corl|manager evaluate RUN_DIR --episodes N`), None without one."""
    try:
        path = cell.run_dir / "evaluations" / f"episodes{episodes}_seed{cell.seed}.json"
        return float(json.loads(path.read_text())["normalized_score"])
    except (OSError, KeyError, ValueError):
        return None


def summarize_arm(env: str, arm: tuple[str, ...], seeds: tuple[int, ...], cells: dict, stale_after_s: float,
                  rescored_episodes: int = 0) -> ArmSummary:
    summary = ArmSummary(env, arm, seeds)
    for seed in seeds:
        cell: Cell | None = cells.get((env, arm, seed))
        if cell is None:
            summary.states[seed] = m.MISSING
            continue
        if cell.unavailable:
            summary.unavailable = cell.unavailable
        state = m.cell_state(cell, stale_after_s)
        if state == m.DONE:
            final = read_final(cell)
            if final is None:
                state = "unreadable"
            elif "normalized_score" in final and rescored_episodes:
                score = rescored_score(cell, rescored_episodes)
                if score is None:
                    state = NOT_RESCORED
                else:
                    summary.scores[seed] = score
            elif "normalized_score" in final:
                summary.scores[seed] = float(final["normalized_score"])
        summary.states[seed] = state
    return summary


def _steps_label(cell: Cell) -> str:
    if cell.kind == "worker":
        return f"workers, intent {cell.arm[1]}"
    return cell.arm[0]


def provenance(cells: list[Cell]) -> tuple[Counter, Counter, Counter, Counter]:
    """(commits, devices, profiles, steps) over the finished cells, from manifests and final.json."""
    commits, devices, profiles, steps = Counter(), Counter(), Counter(), Counter()
    for cell in cells:
        final = read_final(cell) if not cell.unavailable else None
        if final is None:
            continue
        manifest = m.read_manifest(cell.manifest_path) or {}
        grid_commit = str(manifest.get("git_commit") or "")
        ran = str(final.get("code_version") or "")  # the cell's own process: what really ran
        if ran and ran != "unknown" and not grid_commit.startswith(ran):
            commit = ran  # the code changed between the grid's start and this cell's
        elif grid_commit:
            commit = grid_commit[:7] + (" (dirty)" if manifest.get("git_dirty") else "")
        else:
            commit = f"{ran or 'unknown'} (from final.json, no manifest)"
        commits[commit] += 1
        device = str(final.get("device", "unknown"))
        gpus = (manifest.get("device") or {}).get("gpus")
        if final.get("machine"):  # CPU model, cores and torch threads (numbers depend on them), or the GPU
            device += f": {final['machine']}"
        elif gpus:
            device += f" ({', '.join(sorted(set(gpus)))})"
        devices[device] += 1
        profiles[str(final.get("profile", "unknown"))] += 1
        steps[f"{_steps_label(cell)}: {final.get('steps', '?')}"] += 1
    return commits, devices, profiles, steps


def aggregate(table: TableSpec, cells: list[Cell], envs: tuple[str, ...], algos: tuple[str, ...],
              seeds: tuple[int, ...], alpha: float = ALPHA, stale_after_s: float = m.STALE_AFTER_S,
              rescored_episodes: int = 0) -> TableResult:
    """The table's entries from the cells' final.json (or, with `rescored_episodes`, from their
    re-scorings with that many episodes), with Welch's tests and the paper's numbers."""
    by_arm = {(c.env, c.arm, c.seed): c for c in cells}
    columns = table.columns(algos)
    entries = []
    for env in envs:
        for column in columns:
            baseline = summarize_arm(env, column.baseline, seeds, by_arm, stale_after_s, rescored_episodes)
            ours = summarize_arm(env, column.ours, seeds, by_arm, stale_after_s, rescored_episodes)
            entries.append(Entry(env, column, baseline, ours, welch_test(baseline.values, ours.values, alpha),
                                 published(table.number, env, column.baseline),
                                 published(table.number, env, column.ours)))
    managers = {env: summarize_arm(env, ("manager",), seeds, by_arm, stale_after_s)
                for env in envs} if table.needs_manager else {}
    states = {c.key: m.cell_state(c, stale_after_s) for c in cells}
    failed = []
    for c in cells:
        if states[c.key] in (m.FAILED, m.INTERRUPTED):
            error = (m.read_manifest(c.manifest_path) or {}).get("error")
            failed.append((c.key, f"{states[c.key]}: {error or 'no error line'}; log {c.log_path}"))
    commits, devices, profiles, steps = provenance(cells)
    other = {env: {name: p for name in table.published_only if (p := published(table.number, env, name))}
             for env in envs} if table.published_only else {}
    return TableResult(table, envs, seeds, columns, entries, managers, Counter(states.values()), failed, commits,
                       devices, profiles, steps, other, rescored_episodes)


# --- learning curves -------------------------------------------------------------------------------------
@dataclass
class Curve:
    """A metric over training steps (an arm's evaluation score in the tables): mean and std over the seeds
    logged at each step."""
    steps: np.ndarray
    mean: np.ndarray
    std: np.ndarray     # 0 where fewer than 2 seeds logged that step
    count: np.ndarray   # seeds per step


def read_metric(metrics_path: Path, column: str = "eval_normalized_score") -> dict[int, float]:
    """step -> `column` from a metrics.csv (rows where it is empty, e.g. without an evaluation, are skipped;
    an unreadable file or a missing column gives {})."""
    out: dict[int, float] = {}
    try:
        with open(metrics_path, newline="") as f:
            for row in csv.DictReader(f):
                value = row.get(column)
                if value not in (None, ""):
                    out[int(float(row["step"]))] = float(value)
    except (OSError, ValueError, KeyError):
        pass
    return out


def read_eval_scores(metrics_path: Path) -> dict[int, float]:
    """step -> eval_normalized_score from a metrics.csv (rows without an evaluation are skipped)."""
    return read_metric(metrics_path, "eval_normalized_score")


def curve_over_seeds(per_seed: list[dict[int, float]]) -> Curve | None:
    """Mean and std over the seeds that logged each step (step -> value per seed); None if none logged."""
    per_seed = [s for s in per_seed if s]
    if not per_seed:
        return None
    steps = np.array(sorted(set().union(*per_seed)), dtype=np.int64)
    mean, std, count = [], [], []
    for step in steps:
        values = np.array([s[step] for s in per_seed if step in s])
        mean.append(values.mean())
        std.append(values.std(ddof=1) if len(values) >= 2 else 0.0)
        count.append(len(values))
    return Curve(steps, np.array(mean), np.array(std), np.array(count))


def learning_curve(cells: list[Cell]) -> Curve | None:
    return curve_over_seeds([read_eval_scores(c.run_dir / "metrics.csv") for c in cells if not c.unavailable])
