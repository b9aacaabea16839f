"""Checkpoint files of every run: torch.save to a temp file renamed into place (atomic), read with
torch.load(..., weights_only=True) so no pickled code is ever executed."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from common.atomic import atomic_path
from common.errors import InputError


class CheckpointError(InputError, RuntimeError):
    """A checkpoint is missing, unreadable, of another kind, or for another env / obs size."""


def save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one first (make manager ENV=...) or pass its path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds here: corrupt zip, unpickling refused, ...
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt, truncated, or not made by "
                              f"this project): {type(exc).__name__}: {exc}") from None
