"""runs/table<N>.md and .csv from an aggregated table (aggregate.TableResult).

The markdown has the paper's layout (datasets x columns, each entry "baseline → ours"), our numbers
above the paper's, significance marks, seeds done per side, what is missing / failed / unavailable,
and what produced the numbers (commits, devices, profiles, steps). The CSV has one row per entry
with every number (and each seed's score) for further analysis.
"""
from __future__ import annotations

import csv
import io
import time
from collections import Counter
from pathlib import Path

from common.atomic import write_text_atomic
from runs import catalog
from runs.aggregate import ArmSummary, Entry, TableResult

CSV_COLUMNS = ("table", "env", "column", "baseline_arm", "ours_arm", "seeds_requested",
               "baseline_mean", "baseline_std", "baseline_n", "baseline_states", "baseline_scores",
               "ours_mean", "ours_std", "ours_n", "ours_states", "ours_scores",
               "welch_t", "welch_p", "verdict", "alpha", "unavailable",
               "paper_baseline_mean", "paper_baseline_std", "paper_ours_mean", "paper_ours_std", "paper_other")


def _counter_text(counter: Counter) -> str:
    return ", ".join(f"{k} ({v} cell{'' if v == 1 else 's'})" for k, v in counter.most_common()) or "none yet"


def _unavailable_reason(entry: Entry) -> str | None:
    return entry.baseline.unavailable or entry.ours.unavailable


def _paper_text(entry: Entry) -> str:
    if entry.paper_baseline is None and entry.paper_ours is None:
        return "paper: —"
    pb, po = entry.paper_baseline, entry.paper_ours
    return f"paper: {pb.text() if pb else '—'} → {po.text() if po else '—'}"


def entry_markdown(entry: Entry) -> str:
    reason = _unavailable_reason(entry)
    if reason and entry.baseline.n == 0 and entry.ours.n == 0:
        ours = f"unavailable: {reason}"
    else:
        b, o = entry.baseline, entry.ours
        ours = (f"**{b.score_text()} → {o.score_text()}**{entry.welch.marker()}<br>"
                f"{b.progress()} → {o.progress()}; p {entry.welch.p_text()}")
    return f"{ours}<br>{_paper_text(entry)}"


def _scores(arm: ArmSummary) -> str:
    return ";".join(f"{seed}:{score:.6g}" for seed, score in sorted(arm.scores.items()))


def _states(arm: ArmSummary) -> str:
    return ";".join(f"{k}:{v}" for k, v in sorted(arm.state_counts().items()))


def _num(value) -> str:
    return "" if value is None else f"{value:.6g}"


def table_csv(result: TableResult, alpha: float) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in result.entries:
        other = result.published_other.get(e.env, {})
        writer.writerow([
            result.table.number, e.env, e.column.label, "/".join(e.column.baseline), "/".join(e.column.ours),
            len(result.seeds),
            _num(e.baseline.mean), _num(e.baseline.std), e.baseline.n, _states(e.baseline), _scores(e.baseline),
            _num(e.ours.mean), _num(e.ours.std), e.ours.n, _states(e.ours), _scores(e.ours),
            _num(e.welch.t), _num(e.welch.p), e.welch.verdict, alpha, _unavailable_reason(e) or "",
            _num(e.paper_baseline.mean if e.paper_baseline else None),
            _num(e.paper_baseline.std if e.paper_baseline else None),
            _num(e.paper_ours.mean if e.paper_ours else None), _num(e.paper_ours.std if e.paper_ours else None),
            "; ".join(f"{k} {p.text()}" for k, p in other.items())])
    return out.getvalue()


def profile_warning(result: TableResult, requested_profile: str) -> str | None:
    """A warning when the finished runs mix profiles or are not of the profile asked for."""
    found = set(result.profiles)
    if len(found) > 1:
        return f"the finished runs mix profiles ({', '.join(sorted(found))}); keep one profile per --runs-dir"
    if requested_profile != "auto" and found and found != {requested_profile}:
        return (f"the finished runs are of profile {', '.join(found)}, not {requested_profile}: finished runs are "
                "never redone, so use another --runs-dir for another profile")
    return None


def table_markdown(result: TableResult, alpha: float, command: str, plot_name: str | None,
                   requested_profile: str = "auto") -> str:
    t = result.table
    lines = [f"# {t.title}", "",
             f"Reproduction of Table {t.number} of the IQL-TD-MPC paper (Chitnis et al. 2023), written "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `{command}`.", "",
             f"- Entries: **ours**, {t.baseline_label} → {t.ours_label}: D4RL normalised score (0 random, "
             "100 expert), mean ± std over seeds (sample std), then seeds finished per side and Welch's p; "
             f"below it the **paper**'s published mean ± std"
             + (" (std from its appendix table)." if t.number in (2, 3) else "."),
             f"- ↑ / ↓: significant gain / loss of {t.ours_label} over {t.baseline_label}: Welch's t-test "
             f"(scipy.stats.ttest_ind, equal_var=False), two-sided p < {alpha:g}, computed only with ≥ 2 seeds on "
             "each side (else p n/a); no correction for multiple comparisons.",
             f"- Seeds requested: {', '.join(map(str, result.seeds))}. Profiles of the finished runs: "
             f"{_counter_text(result.profiles)}.",
             f"- Training steps of the finished runs: {_counter_text(result.steps)}.",
             *([f"- Scores: each finished run re-scored with {result.rescored_episodes} episodes at its own seed "
                f"(`python -m corl|manager evaluate RUN_DIR --episodes {result.rescored_episodes}`: "
                f"evaluations/episodes{result.rescored_episodes}_seed<k>.json), not final.json's; runs without "
                "that file count as not finished."] if result.rescored_episodes else []),
             f"- Code (git commit each finished cell ran: its final.json's, else its manifest's): {_counter_text(result.commits)}.",
             f"- Devices: {_counter_text(result.devices)}.",
             f"- Cells in this grid: {', '.join(f'{v} {k}' for k, v in sorted(result.cell_states.items()))}.",
             ""]
    if warning := profile_warning(result, requested_profile):
        lines += [f"**Warning: {warning}.**", ""]
    header = ["dataset", *(c.label for c in result.columns), *(f"{name} (paper)" for name in t.published_only)]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for env in result.envs:
        row = [env, *(entry_markdown(result.entry(env, c.label)) for c in result.columns)]
        row += [p.text() if (p := result.published_other.get(env, {}).get(name)) else "—"
                for name in t.published_only]
        lines.append("| " + " | ".join(row) + " |")
    if result.managers:
        lines += ["", "## Manager cells (one per dataset and seed, shared by every worker with intents)", "",
                  "| dataset | Manager runs |", "| --- | --- |"]
        for env, arm in result.managers.items():
            lines.append(f"| {env} | {'unavailable: ' + arm.unavailable if arm.unavailable else arm.progress()} |")
    reasons = Counter(r for e in result.entries for r in {e.baseline.unavailable, e.ours.unavailable} if r)
    if reasons:
        implemented, planned = catalog.worker_names()
        lines += ["", "## Unavailable entries", "",
                  f"Shown in the table, never run: the task layer knows {', '.join(sorted(catalog.known_tasks()))}; "
                  f"`python -m corl` runs {', '.join(implemented)}"
                  + (f" (planned: {', '.join(planned)})." if planned else "."), ""]
        lines += [f"- {reason}: {n} entries" for reason, n in sorted(reasons.items())]
    if result.failed_cells:
        lines += ["", "## Failed or interrupted cells (re-run the same command to retry them)", ""]
        lines += [f"- `{key}`: {what}" for key, what in result.failed_cells]
    if plot_name:
        lines += ["", "## Learning curves", "",
                  "Evaluation score during training, mean ± std over seeds (workers: metrics.csv "
                  "eval_normalized_score; flat agents log no evaluation during training, so their panels "
                  "show each arm's final scores side by side: a dot per seed, mean ± std as a bar).", "",
                  f"![learning curves]({plot_name})"]
    return "\n".join(lines) + "\n"


def write_reports(result: TableResult, out_dir: Path, alpha: float, command: str,
                  plot_name: str | None, requested_profile: str = "auto") -> tuple[Path, Path]:
    md_path = Path(out_dir) / f"{result.table.name}.md"
    csv_path = Path(out_dir) / f"{result.table.name}.csv"
    write_text_atomic(csv_path, table_csv(result, alpha))
    write_text_atomic(md_path, table_markdown(result, alpha, command, plot_name, requested_profile))
    return md_path, csv_path
