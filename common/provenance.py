"""Which code a process runs: the repository's git commit, and whether tracked files differ from it
(a run started from an edited working tree did not run the commit's code exactly)."""
from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout's root (every module that needs it imports it from here)


def _git(repo: Path, *args: str) -> str | None:
    """stdout of a read-only git command in `repo`, stripped; None when git or the repository is missing.
    --no-optional-locks: `git status` would otherwise refresh the index under index.lock, and many
    runs starting at once (a grid) could make the user's own git command fail on that lock."""
    try:
        done = subprocess.run(["git", "--no-optional-locks", "-C", str(repo), *args], capture_output=True,
                              text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_commit(repo: Path = REPO_ROOT, short: bool = False) -> str | None:
    """HEAD's commit hash (abbreviated with `short`), or None outside a git checkout."""
    return _git(repo, "rev-parse", *(["--short"] if short else []), "HEAD") or None


def git_dirty(repo: Path = REPO_ROOT) -> bool | None:
    """True when tracked files differ from HEAD (untracked files do not count); None if unknown."""
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return None if status is None else bool(status)
