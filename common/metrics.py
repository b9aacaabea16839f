"""Per-step training metrics kept on the device and read back once per log row.

`MetricWindow.add` stacks a step's scalar metric tensors into the running sum and remembers, still
on the device, the first step at which any of them was non-finite or larger than `limit`; nothing
is copied to the host until `check` / `means` at a log step. Both training loops (manager/trainer.py,
corl/shared/run.py) use it, so a diverging loss is reported the same way everywhere.
"""
from __future__ import annotations

import torch
from torch import Tensor

from common.errors import InputError

EXPLODING_LOSS = 1e8


class TrainingDiverged(InputError, FloatingPointError):
    """A loss became non-finite or exploded; the message names the loss and the step."""


class MetricWindow:
    def __init__(self, device: torch.device, start_step: int, limit: float = EXPLODING_LOSS):
        self.limit = limit
        self.names: list[str] = []
        self.sums: Tensor | None = None  # (n_terms,)
        self.count = 0
        self.step = torch.full((), start_step, dtype=torch.long, device=device)  # device-side step counter
        self.first_bad_step = torch.full((), -1, dtype=torch.long, device=device)
        self.first_bad_terms: Tensor | None = None  # (n_terms,) bool

    def add(self, metrics: dict[str, Tensor]) -> None:
        """One training step's scalar metrics (same keys every step)."""
        if not self.names:
            self.names = list(metrics)
        values = torch.stack([v.detach() for v in metrics.values()])  # (n_terms,)
        self.step += 1
        bad = ~torch.isfinite(values) | (values.abs() > self.limit)
        if self.first_bad_terms is None:
            self.first_bad_terms = torch.zeros_like(bad)
        is_first = bad.any() & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(is_first, self.step, self.first_bad_step)
        self.first_bad_terms = torch.where(is_first, bad, self.first_bad_terms)
        self.sums = values if self.sums is None else self.sums + values
        self.count += 1

    def check(self, checkpoint_path: object, advice: str) -> None:
        """Raise TrainingDiverged if any metric went bad since the start (one host read)."""
        bad_step = int(self.first_bad_step)
        if bad_step >= 0:
            bad = [n for n, flag in zip(self.names, self.first_bad_terms.tolist()) if flag]
            raise TrainingDiverged(
                f"training diverged: loss {', '.join(bad)} became non-finite or exceeded {self.limit:g} at step "
                f"{bad_step}; the last good checkpoint ({checkpoint_path}) is kept. {advice}")

    def means(self) -> dict[str, float]:
        """Mean of each metric over the steps since the last call, then start a new window."""
        values = (self.sums / max(self.count, 1)).tolist() if self.sums is not None else []
        self.sums, self.count = None, 0
        return dict(zip(self.names, values))
