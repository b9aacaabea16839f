"""Copy a SAC run's actor snapshots into the committed assets (tasks/halfcheetah/assets/).

    python -m tasks.halfcheetah.publish [--seed 0] [--root ~/.cache/iql_td_mpc/sac]

- <run>/medium.{pt,json} -> assets/medium.* (when the run has one and the assets have none, or
  --replace-medium);
- <run>/best.{pt,json}   -> assets/expert.* when its evaluation return beats the committed expert's.
The .pt is copied byte for byte (its sha256 stays valid); the sidecar gains `published_as` and
`source_run`, and `expert_level` (normalised score >= 88, about D4RL's expert data) for the expert.
"""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from common.atomic import atomic_path, write_json_atomic
from common.cli import config_field, parse_config

EXPERT_LEVEL = 88.0  # normalised; D4RL's halfcheetah expert data is about 88-92 by common accounts


@dataclass
class PublishConfig:
    seed: int = config_field(0, "seed of the SAC run (its folder <root>/halfcheetah/train/seed<k>/)")
    root: str = config_field("~/.cache/iql_td_mpc/sac", "root of the SAC runs (as --root of the trainer)")
    assets_dir: str | None = config_field(None, "where the snapshots go (default: tasks/halfcheetah/assets/)")
    replace_medium: bool = config_field(False, "replace a committed medium snapshot by the run's")


def _copy(src: Path, dest: Path, extra: dict) -> dict:
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    meta = json.loads(src.with_suffix(".json").read_text())
    meta.update(extra, file=dest.name)
    write_json_atomic(dest.with_suffix(".json"), meta)
    return meta


def publish(run_dir: Path, assets_dir: Path, replace_medium: bool = False) -> list[str]:
    """Returns one line per snapshot saying what was done."""
    done = []
    medium, best = run_dir / "medium.pt", run_dir / "best.pt"
    if medium.is_file() and (replace_medium or not (assets_dir / "medium.pt").is_file()):
        meta = _copy(medium, assets_dir / "medium.pt", {"published_as": "medium", "source_run": str(run_dir)})
        done.append(f"medium <- {medium} (return {meta['eval_return']:.1f}, step {meta['env_steps']})")
    elif medium.is_file():
        done.append("medium: kept the committed one (--replace-medium to replace it)")
    else:
        done.append("medium: the run has no medium snapshot (it has not reached --medium-return, or it was "
                    "warm-started past it); the committed one stays")
    if best.is_file():
        new = json.loads(best.with_suffix(".json").read_text())
        old_side = assets_dir / "expert.json"
        old = json.loads(old_side.read_text()) if old_side.is_file() else None
        if old is None or new["eval_return"] > old["eval_return"]:
            meta = _copy(best, assets_dir / "expert.pt", {"published_as": "expert", "source_run": str(run_dir),
                                                          "expert_level": new["normalized_score"] >= EXPERT_LEVEL})
            done.append(f"expert <- {best} (return {meta['eval_return']:.1f}, normalised "
                        f"{meta['normalized_score']:.1f}, step {meta['env_steps']})")
        else:
            done.append(f"expert: kept the committed one (return {old['eval_return']:.1f} >= {new['eval_return']:.1f})")
    return done


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(PublishConfig, "python -m tasks.halfcheetah.publish", __doc__, argv)
    import tasks.halfcheetah as package

    run_dir = Path(cfg.root).expanduser() / "halfcheetah" / "train" / f"seed{cfg.seed}"
    if not run_dir.is_dir():
        print(f"error: no SAC run at {run_dir}", file=sys.stderr)
        return 2
    for line in publish(run_dir, Path(cfg.assets_dir) if cfg.assets_dir else package.ASSETS_DIR, cfg.replace_medium):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
