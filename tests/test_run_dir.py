"""The run layout shared by every entry point."""
from __future__ import annotations

import importlib
import json
import os
import stat
from dataclasses import dataclass

import pytest
import yaml

from common import atomic
from common.atomic import write_json_atomic
from common.run_dir import RunAlreadyComplete, RunDir, slug


def test_slug_makes_path_safe_names():
    assert slug("maze2d-umaze-v1") == "maze2d-umaze-v1"
    assert slug("a/b c:d") == "a-b-c-d"
    assert "/" not in slug("../../etc") and slug("../../etc") not in (".", "..")  # one component
    with pytest.raises(ValueError):
        slug("..")


def test_layout_and_completion(tmp_path):
    @dataclass
    class Cfg:
        lr: float = 3e-4
        name: str = "x"

    run = RunDir(tmp_path, "maze2d-umaze-v1", ["bc", "none"], 3)
    assert run.path == tmp_path / "maze2d-umaze-v1" / "bc" / "none" / "seed3"
    run.start(Cfg())
    assert yaml.safe_load(run.config_path.read_text()) == {"lr": 3e-4, "name": "x"}
    run.log_metrics({"step": 0, "loss": 1.5})
    run.log_metrics({"step": 1, "loss": 1.25})
    assert run.metrics_path.read_text().splitlines() == ["step,loss", "0,1.5", "1,1.25"]
    with pytest.raises(ValueError, match="columns"):
        run.log_metrics({"step": 2, "other": 0.0})
    assert not run.is_complete()
    run.finish({"score": 42.0})
    assert run.is_complete() and run.read_final() == {"score": 42.0}


def test_finished_run_is_never_overwritten_silently(tmp_path):
    run = RunDir(tmp_path, "env", "what", 0)
    run.start({"a": 1})
    run.log_metrics({"x": 1})
    run.finish({"done": True})
    with pytest.raises(RunAlreadyComplete, match="--overwrite"):
        run.start({"a": 2})
    assert run.read_final() == {"done": True}
    run.start({"a": 2}, overwrite=True)  # redo: old metrics and final are gone
    assert not run.is_complete() and not run.metrics_path.exists()


def test_unfinished_run_can_restart(tmp_path):
    run = RunDir(tmp_path, "env", "what", 0)
    run.start({"a": 1})
    run.start({"a": 1})  # an interrupted run (no final.json) is simply resumed/redone
    assert run.config_path.exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_files_get_the_permissions_open_would_give_them(tmp_path):
    mask = os.umask(0o027)  # a group-readable umask; restored below
    try:
        fresh = tmp_path / "fresh.json"
        with open(tmp_path / "plain.json", "w") as f:  # what a plain write gives under this umask
            f.write("{}")
        importlib.reload(atomic)  # the module reads the umask once, at import
        atomic.write_json_atomic(fresh, {"a": 1})
        assert stat.S_IMODE(fresh.stat().st_mode) == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o640
        fresh.chmod(0o604)  # replacing a file keeps the permissions it had
        atomic.write_json_atomic(fresh, {"a": 2})
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o604 and json.loads(fresh.read_text()) == {"a": 2}
    finally:
        os.umask(mask)
        importlib.reload(atomic)


def test_atomic_json_leaves_no_temp_files(tmp_path):
    write_json_atomic(tmp_path / "r.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "r.json", {"a": object()})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
