"""Plumbing the worker test files share: a smoke run on the session's small umaze dataset, its
metrics rows, the check that a worker's presets hold CORL's per-domain values, and the check of a
worker file's two PLUGIN(intents) lines."""
from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from common.checkpoint import load_checkpoint
from corl.shared import config as worker_config

ENV = "maze2d-umaze-v1"
PRESETS_DIR = Path(worker_config.__file__).resolve().parents[1] / "presets"


def smoke_run(train: Callable, config_cls: type, algo: str, data_dir, runs_dir, intent: str, *extra: str):
    """train() at the smoke profile (200 steps), logging every 50 and checkpointing every 100 steps."""
    args = ["--algo", algo, "--env", ENV, "--profile", "smoke", "--intent", intent, "--runs_dir", str(runs_dir),
            "--data_dir", str(data_dir), "--progress", "false", "--log_every", "50", "--checkpoint_every", "100",
            "--eval_num_envs", "2", *extra]
    return train(worker_config.parse_worker_config(config_cls, algo, args))


def metrics_rows(runs_dir, algo: str, intent: str, seed: int = 0) -> list[dict[str, str]]:
    """metrics.csv of runs/<env>/<algo>/<intent>/seed<k> as a list of {column: text}."""
    with open(Path(runs_dir) / ENV / algo / intent / f"seed{seed}" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def assert_presets(algo: str, config_cls: type, expected: dict[str, dict[str, Any]]) -> None:
    """Every preset field exists in the config, and each domain's preset sets the expected values."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    for domain, values in expected.items():
        data = yaml.safe_load((PRESETS_DIR / algo / f"{domain}.yaml").read_text())
        data.update(data.pop("datasets", None) or {})
        assert set(data) <= fields, domain
        assert {k: data[k] for k in values} == values, domain


def check_smoke_run(runs_dir, algo: str, intent: str, result: dict, loss_keys) -> tuple[list[dict[str, str]], dict, int]:
    """The checks every worker's smoke run (smoke_run: 200 steps, logged every 50) must pass: final.json
    equals the returned result, a finite score, metrics rows at 50..200 with finite losses, and a
    checkpoint for the augmented obs size. Returns (metrics rows, checkpoint, obs_dim) for more checks."""
    run_path = Path(runs_dir) / ENV / algo / intent / "seed0"
    assert json.loads((run_path / "final.json").read_text()) == result
    assert result["steps"] == 200 and np.isfinite(result["normalized_score"])
    assert f"torch threads {torch.get_num_threads()}" in result["machine"]  # what the numbers depend on
    rows = metrics_rows(runs_dir, algo, intent)
    assert [int(r["step"]) for r in rows] == [50, 100, 150, 200]
    assert all(np.isfinite(float(r[k])) for r in rows for k in loss_keys)
    state = load_checkpoint(run_path / "checkpoint.pt")
    obs_dim = 4 if intent == "none" else 14  # maze2d + the smoke Manager's 10-d intent
    assert state["obs_dim"] == obs_dim
    return rows, state, obs_dim


def assert_two_marked_plugin_lines(path: Path) -> None:
    """A worker file reaches the plugin through exactly two lines marked PLUGIN(intents): first the
    dataset's augmentation, then the eval env's wrap."""
    marked = [line.strip() for line in Path(path).read_text().splitlines() if "# PLUGIN(intents)" in line]
    assert len(marked) == 2, (Path(path).name, marked)
    assert re.match(r"\w+ = augment\(\w+, ", marked[0]), marked  # the dataset line comes first
    assert re.match(r"\w+ = wrap_env\(", marked[1]), marked
