"""The paper's published numbers (paper_results.csv beside this file, transcribed from Tables 1-5).

Keys are (table number, env, arm) with arm as in the run folders: "td_mpc", "iql_td_mpc" (Table 1,
plus the published-only "IQL", "TT", "TAP"), "<worker>/none", "<worker>/manager" (Table 2),
"<worker>/none", "<worker>/random" (Table 3).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PAPER_RESULTS = Path(__file__).with_name("paper_results.csv")


@dataclass(frozen=True)
class Published:
    mean: float
    std: float

    def text(self) -> str:
        return f"{self.mean:g} ± {self.std:g}"


@lru_cache(maxsize=None)
def published_numbers() -> dict[tuple[int, str, str], Published]:
    with open(PAPER_RESULTS, newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {(int(r["table"]), r["env"], r["arm"]): Published(float(r["mean"]), float(r["std"])) for r in rows}


def published(table: int, env: str, arm: tuple[str, ...] | str) -> Published | None:
    """The paper's mean and std for one arm of one dataset, or None where the paper has none."""
    key = arm if isinstance(arm, str) else "/".join(arm)
    return published_numbers().get((int(table), env, key))
