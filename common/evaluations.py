"""Scoring a trained run again from its checkpoint (`python -m corl evaluate`, `python -m manager
evaluate`): the settings both commands share, where a result goes, reuse of a result made for the
same checkpoint, the comparison with final.json, and the key=value report.

A result goes to `<run>/evaluations/episodes<N>_seed<S>.json` (atomic). It is reported rather than
redone while the run's checkpoint.pt is the very file it was made from (its sha256; unless
--overwrite); a run that has moved on, or was trained again, is evaluated again.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common.atomic import write_json_atomic
from common.checkpoint import file_sha256
from common.cli import check_minimums
from common.cli import config_field as field
from common.device import DEVICE_HELP
from common.errors import INPUT_ERRORS, report_input_error


@dataclass
class EvaluateConfig:
    run_dirs: list[str] = field(None, "run folders (each with its checkpoint.pt), e.g. runs/<env>/<what>/seed*",
                                positional=True, nargs="+")
    episodes: int = field(0, "evaluation episodes (0: as many as the run's final evaluation)")
    seed: int = field(-1, "evaluation seed: episode e starts from reset seed (seed, e) (-1: the run's seed; with "
                          "the default episodes this replays final.json's score)")
    device: str = field("auto", DEVICE_HELP)
    overwrite: bool = field(False, "redo an evaluation whose result file exists for this checkpoint instead of "
                                   "reporting it")


EVALUATE_MINIMUMS = {"episodes": 0, "seed": -1}


def result_path(run_dir: Path, episodes: int, seed: int) -> Path:
    return run_dir / "evaluations" / f"episodes{episodes}_seed{seed}.json"


def earlier_result(out: Path, checkpoint_sha256: str, checkpoint_step: int, overwrite: bool) -> dict[str, Any] | None:
    """The result already at `out` when it was made from this very checkpoint file (its sha256; and
    not --overwrite)."""
    if not out.is_file() or overwrite:
        return None
    done = json.loads(out.read_text())
    if done.get("checkpoint_sha256") == checkpoint_sha256:
        print(f"{out} exists for this checkpoint (step {checkpoint_step}); reporting it "
              "(pass --overwrite to evaluate again)", file=sys.stderr)
        return done
    print(f"{out} was made from another checkpoint (step {done.get('checkpoint_step')}; now step {checkpoint_step}): "
          "evaluating again", file=sys.stderr)
    return None


def compare_with_final(result: dict[str, Any], run_dir: Path, replays_final: bool) -> dict[str, Any]:
    """Add final.json's score and whether this evaluation reproduced it (when it should: the run's
    seed and final episode count); returns final.json's contents ({} without one)."""
    final_path = run_dir / "final.json"
    final = json.loads(final_path.read_text()) if final_path.is_file() else {}
    if final and replays_final:
        result["final_json_score"] = final["normalized_score"]
        result["replays_final_json"] = bool(np.isclose(final["normalized_score"], result["normalized_score"],
                                                       rtol=0, atol=1e-9))
    return final


Loader = Callable[[Path, EvaluateConfig], tuple[Path, int, Callable[[], dict]]]


def evaluate_one(run_dir: Path, cfg: EvaluateConfig, load: Loader,
                 warnings: Callable[[dict[str, Any]], list[str]]) -> dict[str, Any]:
    """One run folder: its earlier result for this checkpoint, or a new evaluation written to its
    result file; prints the warnings about it."""
    checkpoint = run_dir / "checkpoint.pt"
    sha256 = file_sha256(checkpoint) if checkpoint.is_file() else ""  # before loading: a newer file is evaluated again
    out, checkpoint_step, evaluate_now = load(run_dir, cfg)
    result = earlier_result(out, sha256, checkpoint_step, cfg.overwrite)
    if result is None:
        result = {**evaluate_now(), "checkpoint_sha256": sha256, "config": asdict(cfg)}
        write_json_atomic(out, result)
        print(f"wrote {out}", file=sys.stderr)
    lines = warnings(result)
    if not lines and result.get("replays_final_json") is False:
        lines = [f"{run_dir}: final.json says {result['final_json_score']}; this evaluation of the same checkpoint, "
                 "seed and episodes gives another number (another device or torch version?)"]
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)
    return result


def summary_table(results: list[dict[str, Any]]) -> str:
    """Mean +- std over runs (seeds) of the normalised score, per env, algorithm (or mode), intent and
    episode count; the std is the sample std (ddof 1), as in the grids' tables (runs/aggregate.py)."""
    groups: dict[tuple, list[float]] = {}
    for r in results:
        key = (r["env"], r.get("algo") or r.get("mode"), r.get("intent", "-"), r["episodes"])
        groups.setdefault(key, []).append(r["normalized_score"])
    lines = ["| env | algo / mode | intent | episodes | runs | normalised score (mean +- sample std over runs) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for (env, what, intent, episodes), scores in groups.items():
        spread = f"{np.std(scores, ddof=1):.1f}" if len(scores) > 1 else "n/a"
        lines.append(f"| {env} | {what} | {intent} | {episodes} | {len(scores)} | {np.mean(scores):.1f} +- {spread} |")
    return "\n".join(lines)


def run_evaluation(cfg: EvaluateConfig, load: Loader,
                   warnings: Callable[[dict[str, Any]], list[str]] = lambda result: []) -> int:
    """The `main` of both commands: each run folder evaluated (`load(run_dir, cfg)` returns its result
    path, its checkpoint step and a callable that evaluates) or its earlier result reported, as
    key=value lines; with several folders, a blank line between them and a summary table at the end.
    A folder that fails is named and the others go on; exit status 2 if any failed."""
    try:
        check_minimums(cfg, EVALUATE_MINIMUMS)
    except INPUT_ERRORS as exc:
        return report_input_error(exc)
    results, failed = [], 0
    for index, run_dir in enumerate(cfg.run_dirs):
        try:
            result = evaluate_one(Path(run_dir), cfg, load, warnings)
        except INPUT_ERRORS as exc:
            failed += 1
            report_input_error(exc)
            continue
        if results:
            print()
        results.append(result)
        for key, value in result.items():
            if key != "config":
                print(f"{key}={value}")
    if len(cfg.run_dirs) > 1 and results:
        print("\n" + summary_table(results))
    return 2 if failed else 0
