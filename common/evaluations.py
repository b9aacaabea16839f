"""Scoring a trained run again from its checkpoint (`python -m corl evaluate`, `python -m manager
evaluate`): the settings both commands share, where a result goes, reuse of a result made for the
same checkpoint, the comparison with final.json, and the key=value report.

A result goes to `<run>/evaluations/episodes<N>_seed<S>.json` (atomic). It is reported rather than
redone while the run's checkpoint is at the step it was made at (unless --overwrite); a run that
has moved on is evaluated again.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from common.atomic import write_json_atomic
from common.cli import check_minimums
from common.cli import config_field as field
from common.errors import INPUT_ERRORS, report_input_error


@dataclass
class EvaluateConfig:
    run_dir: str = field(None, "the run folder (its checkpoint.pt)", positional=True)
    episodes: int = field(0, "evaluation episodes (0: as many as the run's final evaluation)")
    seed: int = field(-1, "evaluation seed: episode e starts from reset seed (seed, e) (-1: the run's seed; with "
                          "the default episodes this replays final.json's score)")
    device: str = field("auto", "auto | cpu | cuda")
    overwrite: bool = field(False, "redo an evaluation whose result file exists for this checkpoint instead of "
                                   "reporting it")


EVALUATE_MINIMUMS = {"episodes": 0, "seed": -1}


def result_path(run_dir: Path, episodes: int, seed: int) -> Path:
    return run_dir / "evaluations" / f"episodes{episodes}_seed{seed}.json"


def earlier_result(out: Path, checkpoint_step: int, overwrite: bool) -> dict[str, Any] | None:
    """The result already at `out` when it was made for this checkpoint step (and not --overwrite)."""
    if not out.is_file() or overwrite:
        return None
    done = json.loads(out.read_text())
    if done.get("checkpoint_step") == checkpoint_step:
        print(f"{out} exists for this checkpoint (step {checkpoint_step}); reporting it "
              "(pass --overwrite to evaluate again)", file=sys.stderr)
        return done
    print(f"{out} was made at checkpoint step {done.get('checkpoint_step')}, the run has moved on to step "
          f"{checkpoint_step}: evaluating again", file=sys.stderr)
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


def run_evaluation(cfg: EvaluateConfig, evaluate: Callable[[EvaluateConfig], tuple[Path, int, Callable[[], dict]]],
                   warnings: Callable[[dict[str, Any]], list[str]] = lambda result: []) -> int:
    """The `main` of both commands: `evaluate(cfg)` loads the run and returns (result path, checkpoint
    step, a callable that evaluates); prints `warnings(result)` and the result as key=value lines."""
    try:
        check_minimums(cfg, EVALUATE_MINIMUMS)
        out, checkpoint_step, evaluate_now = evaluate(cfg)
        result = earlier_result(out, checkpoint_step, cfg.overwrite)
        if result is None:
            result = {**evaluate_now(), "config": asdict(cfg)}
            write_json_atomic(out, result)
            print(f"wrote {out}", file=sys.stderr)
    except INPUT_ERRORS as exc:
        return report_input_error(exc)
    lines = warnings(result)
    if not lines and result.get("replays_final_json") is False:
        lines = [f"final.json says {result['final_json_score']}; this evaluation of the same checkpoint, seed and "
                 "episodes gives another number (another device or torch version?)"]
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)
    for key, value in result.items():
        if key != "config":
            print(f"{key}={value}")
    return 0
