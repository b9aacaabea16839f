"""Progress bars for long work (tqdm on stderr), switchable off for tests and scripts."""
from __future__ import annotations

from tqdm import tqdm


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "step") -> tqdm:
    """A tqdm bar; `enabled=False` returns a silent one with the same interface."""
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not enabled,
                dynamic_ncols=True, mininterval=0.5)
