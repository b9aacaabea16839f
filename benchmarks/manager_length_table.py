"""Worker scores by the length of the Manager that gave the intents (Managers exported as snapshots).

A Manager run with `--snapshot-every N` leaves snapshots/manager_step<N>.pt; workers run with each
snapshot as `--manager`. This script reads the workers' run folders under RESULTS (any depth: each
folder with a final.json and a config.yaml), takes the Manager's seed and training step from the
`manager` path in config.yaml (`.../seed<K>/snapshots/manager_step<N>.pt`, or `.../seed<K>/manager.pt`
with the step from that Manager's final.json when it sits beside it), and prints a markdown table:
one row per Manager step, one column per Manager seed (worker seed = Manager seed), the mean +- std
over Managers, and the runs whose worker seed differs from the Manager's (which of the two seeds
moves the score). With RESULTS/intent_direction.jsonl (`benchmarks/intent_direction.py`'s output for
the same snapshots) it adds each snapshot's intent diagnostics and their Spearman rank correlation
with the worker score over the (Manager seed, step) pairs: do the decoder-based diagnostics predict
which Manager helps the worker?

    python benchmarks/manager_length_table.py docs/results/bc_manager_length_maze2d-medium_cpu
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

import yaml
from scipy.stats import spearmanr

SNAPSHOT = re.compile(r"seed(\d+)/snapshots/manager_step(\d+)\.pt$")
EXPORT = re.compile(r"seed(\d+)/manager\.pt$")
DIAGNOSTICS = {  # column name -> path into one intent_direction.py JSON line
    "planned intents vs goal path (cos)": ("planned_vs_goal_path", "mean_cosine"),
    "V vs grid value (Spearman)": ("value_vs_grid_value_spearman",),
    "hindsight intents vs actual (cos)": ("hindsight_vs_actual", "mean_cosine"),
}


def manager_of(manager_path: str, root: Path) -> tuple[int, int]:
    """A --manager path (relative ones taken from root) -> (Manager seed, Manager training step)."""
    if match := SNAPSHOT.search(manager_path):
        return int(match.group(1)), int(match.group(2))
    if match := EXPORT.search(manager_path):
        final = (root / manager_path).with_name("final.json")  # root / an absolute path = that path
        if final.exists():
            return int(match.group(1)), int(json.loads(final.read_text())["steps"])
    raise ValueError(f"cannot tell the Manager's seed and step from {manager_path!r}: expected "
                     ".../seed<K>/snapshots/manager_step<N>.pt or .../seed<K>/manager.pt beside its final.json")


def worker_runs(results: Path) -> list[dict]:
    """Every finished worker run under results: Manager seed and step, worker seed, score."""
    runs = []
    for final_path in sorted(results.rglob("final.json")):
        final = json.loads(final_path.read_text())
        if "algo" not in final or final.get("intent") != "manager":
            continue  # a Manager's own final.json, or a worker without Manager intents
        config = yaml.safe_load((final_path.parent / "config.yaml").read_text())
        manager_seed, manager_step = manager_of(str(config["manager"]), results)
        runs.append({"manager_seed": manager_seed, "manager_step": manager_step,
                     "worker_seed": int(final["seed"]), "score": float(final["normalized_score"])})
    return runs


def diagnostics_by_snapshot(path: Path) -> dict[tuple[int, int], dict[str, float]]:
    """intent_direction.jsonl -> {(Manager seed, step): {diagnostic column: value}} (Manager paths
    relative to the file's folder, or absolute)."""
    table = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        values = {}
        for name, keys in DIAGNOSTICS.items():
            value = record
            for key in keys:
                value = value[key]
            values[name] = float(value)
        table[manager_of(record["manager"], path.parent)] = values
    return table


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.1f}" if values else ""
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def report(results: Path) -> str:
    runs = worker_runs(results)
    if not runs:
        raise SystemExit(f"no worker run with Manager intents (final.json + config.yaml) under {results}")
    matched = [r for r in runs if r["worker_seed"] == r["manager_seed"]]
    crossed = [r for r in runs if r["worker_seed"] != r["manager_seed"]]
    seeds = sorted({r["manager_seed"] for r in matched})
    steps = sorted({r["manager_step"] for r in matched})
    score = {(r["manager_seed"], r["manager_step"]): r["score"] for r in matched}
    lines = ["| Manager updates | " + " | ".join(f"Manager seed {s} (worker seed {s})" for s in seeds)
             + " | mean ± std over Managers |", "| --- " * (len(seeds) + 2) + "|"]
    for step in steps:
        cells = [f"{score[s, step]:.1f}" if (s, step) in score else "" for s in seeds]
        lines.append(f"| {step // 1000}K | " + " | ".join(cells) + " | "
                     + mean_std([score[s, step] for s in seeds if (s, step) in score]) + " |")
    if crossed:
        lines += ["", "| Manager (seed, updates) | worker seed | score | the same Manager with worker seed = its seed |",
                  "| --- | --- | --- | --- |"]
        for r in sorted(crossed, key=lambda r: (r["manager_seed"], r["manager_step"])):
            own = score.get((r["manager_seed"], r["manager_step"]))
            lines.append(f"| {r['manager_seed']}, {r['manager_step'] // 1000}K | {r['worker_seed']} | "
                         f"{r['score']:.1f} | {'' if own is None else f'{own:.1f}'} |")
    jsonl = results / "intent_direction.jsonl"
    if jsonl.exists():
        diagnostics = diagnostics_by_snapshot(jsonl)
        pairs = [key for key in sorted(score) if key in diagnostics]
        lines += ["", "| Manager (seed, updates) | worker score | " + " | ".join(DIAGNOSTICS) + " |",
                  "| --- " * (len(DIAGNOSTICS) + 2) + "|"]
        for key in pairs:
            lines.append(f"| {key[0]}, {key[1] // 1000}K | {score[key]:.1f} | "
                         + " | ".join(f"{diagnostics[key][name]:.3f}" for name in DIAGNOSTICS) + " |")
        if len(pairs) >= 3:
            rhos = []
            for name in DIAGNOSTICS:
                values = [diagnostics[k][name] for k in pairs]
                if len(set(values)) == 1:
                    rhos.append("n/a (the same for all)")
                    continue
                rho, p = spearmanr([score[k] for k in pairs], values)
                rhos.append(f"{rho:.2f} (p {p:.2g})")
            lines.append(f"| Spearman with the score, {len(pairs)} Managers | | " + " | ".join(rhos) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="folder holding the worker run folders (and intent_direction.jsonl)")
    print(report(parser.parse_args().results))


if __name__ == "__main__":
    main()
