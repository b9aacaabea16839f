"""Optional Weights & Biases mirror of a run folder's metrics.csv (`--wandb` / `WANDB=1`).

Offline unless WANDB_MODE says otherwise (no account, no network: `wandb sync <run>/wandb/...`
uploads later). One W&B run per run folder: its id is kept in `<run>/wandb_id`, so a run resumed
after an interruption or a chunk continues the same W&B run (resume="allow"; offline, each call
adds an offline-run folder with that id, and `wandb sync` joins them), while a fresh start
(`--overwrite`) gets a new id. Several runs may be open in one process (stacked seeds).
`WANDB_PROJECT` overrides the project name. metrics.csv stays the record; this is a view of it.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import string
from pathlib import Path
from typing import Any, Iterator, Mapping

from common.atomic import write_text_atomic

ID_FILE = "wandb_id"
_ID_CHARS = string.ascii_lowercase + string.digits


def run_id(run_path: Path, fresh: bool) -> str:
    """The W&B id of the run folder: a new one for a fresh start, the kept one for a resumed run."""
    path = run_path / ID_FILE
    if fresh or not path.is_file():
        write_text_atomic(path, "".join(secrets.choice(_ID_CHARS) for _ in range(8)) + "\n")
    return path.read_text().strip()


class WandbMirror:
    """One run folder's W&B run: log(row, step) per metrics.csv row; `result` is set to final.json's
    contents when the run finishes; closed at the end of the call (`closing`)."""

    def __init__(self, run_path: Path, project: str, group: str, name: str, config: Mapping[str, Any],
                 fresh: bool):
        import wandb  # imported only when asked for

        os.environ.setdefault("WANDB_MODE", "offline")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", project), group=group, name=name,
                              dir=str(run_path), config=dict(config), id=run_id(run_path, fresh), resume="allow",
                              reinit="create_new")
        self.result: dict[str, Any] | None = None

    def log(self, row: Mapping[str, Any], step: int) -> None:
        self.run.log({k: v for k, v in row.items() if v != "" and k != "step"}, step=step)

    def close(self, result: Mapping[str, Any] | None = None, failed: bool = False) -> None:
        """End this call's W&B run: `result` (final.json's contents) goes into its summary; `failed`
        marks a call that ended by an error or an interruption (exit code 1)."""
        if result is not None:
            self.run.summary.update(dict(result))
        self.run.finish(exit_code=1 if failed else 0)


@contextlib.contextmanager
def closing(mirrors: list[WandbMirror]) -> Iterator[None]:
    """Close the mirrors opened in the block (appended to `mirrors`), each with its result (None after
    a chunk: nothing to report); when the block raised (an error, an interruption, a diverged seed of
    a stacked run), those without a result close as failed."""
    try:
        yield
    except BaseException:
        for mirror in mirrors:
            mirror.close(mirror.result, failed=mirror.result is None)
        raise
    for mirror in mirrors:
        mirror.close(mirror.result)
