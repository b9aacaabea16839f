"""Checkpoint files of every run: torch.save to a temp file renamed into place (atomic), read with
torch.load(..., weights_only=True) so no pickled code is ever executed."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np
import torch

from common.atomic import atomic_path
from common.errors import InputError


class CheckpointError(InputError, RuntimeError):
    """A checkpoint is missing, unreadable, of another kind, or for another env / obs size."""


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex): which exact checkpoint a result was made with."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def save_atomic(obj: dict[str, Any], path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


# what to do about an unreadable checkpoint.pt of a run being resumed (its weights are lost either way)
RESTART_FIX = "pass --overwrite to start the run again from step 0"


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    fix: str = "") -> dict[str, Any]:
    """torch.load(weights_only=True) of one of this project's checkpoints, or a CheckpointError
    naming the file and why it cannot be read, then `fix` (what the caller's user can do about it)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train one first (make manager ENV=...) or pass its path")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds here: corrupt zip, unpickling refused, ...
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt, truncated, or not made by "
                              f"this project): {load_failure(exc)}" + (f" To go on: {fix}." if fix else "")) from None


def load_failure(exc: BaseException) -> str:
    """The first line of torch.load's error; for weights_only's refusal not its advice to load with
    weights_only=False (which would run whatever code the file holds), but what it means here."""
    lines = str(exc).strip().splitlines()
    if "Weights only load failed" in str(exc):
        return ("torch.load(weights_only=True) refused its contents; this project's checkpoints hold only "
                "tensors and plain values, so the file is not one of them")
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def check_resumed_settings(path: str | os.PathLike, saved: Mapping[str, Any], current: Mapping[str, Any],
                           free: Collection[str] = ()) -> None:
    """A run resumes only with the settings it started with, so that it ends as an uninterrupted run
    would (a changed --steps alone moves learning-rate schedules and the evaluation steps). `free`:
    the settings that change no trained number (where the files go, chunking, progress bars,
    the device). Settings one side lacks (a field added to the code since) are not compared."""
    changed = [f"{key} {saved[key]!r} -> {current[key]!r}" for key in sorted(set(saved) & set(current))
               if key not in free and saved[key] != current[key]]
    if changed:
        raise CheckpointError(f"{path} was started with other settings ({'; '.join(changed)}); resume with the "
                              "settings it started with (config.yaml beside it), or pass --overwrite to start again")


def check_same_statistics(path: str | os.PathLike, stored: tuple[Any, Any], current: tuple[Any, Any],
                          data: str) -> None:
    """A run resumes only on data with the normalisation statistics (mean, std) its checkpoint was
    trained with: other ones mean other data, and the weights would see shifted inputs. `data` names
    what was read now, for the message (float32 rounding aside: rtol 1e-5)."""
    same = all(np.allclose(torch.as_tensor(s).cpu().numpy(), np.asarray(c), rtol=1e-5)
               for s, c in zip(stored, current))
    if not same:
        raise CheckpointError(f"{path} was trained on other data: its observation statistics differ from those of "
                              f"{data}; put that data back, or pass --overwrite to start again on this one")
