"""Which torch device and compute profile a run uses."""
from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is an error saying what to do."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    return device


def resolve_profile(profile: str, device: torch.device) -> str:
    """'auto' -> 'paper' on a GPU, 'quick' on a CPU; any other name is kept."""
    if profile != "auto":
        return profile
    return "paper" if device.type == "cuda" else "quick"
