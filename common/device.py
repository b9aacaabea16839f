"""Which torch device and compute profile a run uses.

`--device` takes `auto` (cuda when there is a GPU, else cpu), `cpu`, `cuda`, `cuda:N` or `mps`
(Apple silicon; accepted where this torch has it, not exercised by this project's tests or runs).
A name torch would reject, or a device this machine lacks, stops the run with one `error:` line
that names the choices, before any data is read.
"""
from __future__ import annotations

import re

import torch

DEVICE_CHOICES = "auto | cpu | cuda | cuda:N | mps"
DEVICE_HELP = f"{DEVICE_CHOICES} (auto: cuda when there is a GPU, else cpu)"

_DEVICE_NAME = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_device_name(name: str) -> None:
    """A ValueError naming the choices unless `name` is one of them (the machine is not asked: a grid
    may send its cells to other machines)."""
    if not _DEVICE_NAME.match(name):
        raise ValueError(f"--device {name!r} is not a device this project runs on; choose {DEVICE_CHOICES}")


def _cuda_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu. Any other choice must exist on this machine: a
    missing one is a ValueError that says what to use instead."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = _cuda_count()
        if count == 0:
            raise ValueError(f"--device {name} was asked for but no CUDA device is available; use --device cpu")
        if device.index is not None and device.index >= count:
            visible = ", ".join(f"cuda:{i}" for i in range(count))
            raise ValueError(f"--device {name}: this machine shows {count} CUDA device(s) ({visible}); pick one of "
                             "them, or --device cuda (CUDA_VISIBLE_DEVICES chooses which GPUs a process sees)")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"--device {name}: this torch has no MPS device here (MPS needs an Apple-silicon Mac and a "
                         "torch built for it); use --device cpu")
    return device


def resolve_profile(profile: str, device: torch.device) -> str:
    """'auto' -> 'paper' on a GPU, 'quick' on a CPU; any other name is kept."""
    if profile != "auto":
        return profile
    return "paper" if device.type == "cuda" else "quick"
