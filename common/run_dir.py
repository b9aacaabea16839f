"""The one run layout of the product: runs/<env>/<what...>/seed<k>/ holding

- config.yaml  the resolved config, written when the run starts;
- metrics.csv  one row per logged step (header from the first row, appended as the run goes);
- final.json   the result, written last and atomically: its presence means the run is complete.

Path parts that are not path-safe are slugged.
"""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from common.atomic import write_json_atomic, write_text_atomic
from common.errors import InputError


def slug(name: str) -> str:
    """Path-safe form of a name: letters, digits, '.', '_', '-'; anything else becomes '-'."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip("-")
    if text in ("", ".", ".."):
        raise ValueError(f"cannot make a run-directory name out of {name!r}")
    return text


class RunAlreadyComplete(InputError, RuntimeError):
    """Raised when a finished run would be overwritten without being asked to."""


class RunDir:
    def __init__(self, root: str | Path, env: str, what: str | Sequence[str], seed: int):
        parts = [what] if isinstance(what, str) else list(what)
        self.path = Path(root) / slug(env) / Path(*[slug(p) for p in parts]) / f"seed{int(seed)}"

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def final_path(self) -> Path:
        return self.path / "final.json"

    def is_complete(self) -> bool:
        return self.final_path.is_file()

    def read_final(self) -> dict[str, Any]:
        return json.loads(self.final_path.read_text())

    def start(self, config: Any, overwrite: bool = False) -> None:
        """Create the folder and write config.yaml. A complete run is only redone with overwrite,
        and then its old contents are removed first so no stale metrics survive."""
        if self.is_complete():
            if not overwrite:
                raise RunAlreadyComplete(
                    f"{self.path} already holds a finished run (final.json); "
                    "pass --overwrite to redo it, or use another --runs-dir / seed")
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        cfg = asdict(config) if is_dataclass(config) else dict(config)
        write_text_atomic(self.config_path, yaml.safe_dump(cfg, sort_keys=False))

    def log_metrics(self, row: Mapping[str, Any]) -> None:
        """Append one row to metrics.csv; every row must have the columns of the first."""
        new_file = not self.metrics_path.exists()
        if not new_file:
            with open(self.metrics_path, newline="") as f:
                header = next(csv.reader(f), None)
            if header is not None and list(row) != header:
                raise ValueError(f"metrics row has columns {list(row)}, {self.metrics_path} has {header}")
        with open(self.metrics_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new_file:
                writer.writeheader()
            writer.writerow(row)

    def truncate_metrics(self, step: int) -> None:
        """Drop metrics.csv rows logged after `step` (a run resumed from its checkpoint at `step`
        re-logs them, so the file ends up as an uninterrupted run's)."""
        if not self.metrics_path.exists():
            return
        with open(self.metrics_path, newline="") as f:
            rows = list(csv.reader(f))
        kept = rows[:1] + [r for r in rows[1:] if int(r[0]) <= step]
        text = io.StringIO()
        csv.writer(text).writerows(kept)
        write_text_atomic(self.metrics_path, text.getvalue())

    def finish(self, result: Mapping[str, Any]) -> None:
        write_json_atomic(self.final_path, dict(result))
