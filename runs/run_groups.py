"""Hand-given run folders as lines of seeds (python -m runs curves, python -m runs summary)."""
from __future__ import annotations

import re
from pathlib import Path


def group_by_seed(run_dirs: list[Path]) -> dict[str, list[Path]]:
    """label -> the run folders of one line: a folder named seed<k> joins its siblings under the parent's
    path; any other folder is a line of its own. A label is the shortest tail of the line's path, two
    parts at least, that tells the lines apart (bc/none and bc/manager for two arms of BC, the env's
    name too where two envs share those). A folder given twice counts once."""
    groups: dict[Path, list[Path]] = {}
    seen: set[Path] = set()
    for run_dir in run_dirs:
        if run_dir.resolve() in seen:  # given twice (overlapping globs): counted once
            continue
        seen.add(run_dir.resolve())
        line = run_dir.parent if re.fullmatch(r"seed\d+", run_dir.name) else run_dir
        groups.setdefault(line.resolve(), []).append(run_dir)
    longest = max(len(line.parts) for line in groups)
    for tail in range(2, max(longest, 2) + 1):
        labels = ["/".join(line.parts[-tail:]).lstrip("/") for line in groups]
        if len(set(labels)) == len(labels):
            break
    return dict(zip(labels, groups.values()))
