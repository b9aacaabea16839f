"""docs/workers.md "Adding your own algorithm": its example worker file, taken from the page itself,
registered as the page says, trains with Manager intents through `python -m corl`, learns, writes its
run folder, and is re-scored by `python -m corl evaluate` to final.json's score. Keeps the guide true."""
from __future__ import annotations

import csv
import importlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import corl.__main__ as corl_cli
from tests.worker_helpers import ENV, assert_two_marked_plugin_lines

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "workers.md"
MARKER = "<!-- example-worker"


def example_worker_source() -> str:
    """The python block that follows the marker in docs/workers.md."""
    text = GUIDE.read_text()
    assert MARKER in text, "docs/workers.md lost its example worker"
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.S)
    assert block, "no python block after the example-worker marker"
    return block.group(1)


@pytest.fixture
def my_bc(tmp_path, monkeypatch):
    """The guide's file saved as a module and registered in WORKERS under its name, my_bc."""
    folder = tmp_path / "guide"
    folder.mkdir()
    (folder / "my_bc_from_guide.py").write_text(example_worker_source())
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setitem(corl_cli.WORKERS, "my_bc", "my_bc_from_guide")
    yield folder / "my_bc_from_guide.py"
    sys.modules.pop("my_bc_from_guide", None)


def test_the_guide_worker_trains_with_intents_and_is_rescored(my_bc, data_dir, tmp_path, smoke_manager, capsys):
    assert_two_marked_plugin_lines(my_bc)
    runs = tmp_path / "runs"
    args = ["my_bc", "--env", ENV, "--profile", "smoke", "--steps", "300", "--intent", "manager",
            "--manager", str(smoke_manager), "--runs_dir", str(runs), "--data_dir", str(data_dir),
            "--progress", "false", "--log_every", "50", "--checkpoint_every", "100", "--eval_num_envs", "2",
            "--weight_decay", "0.001"]
    assert corl_cli.main(args) == 0
    run_dir = runs / ENV / "my_bc" / "manager" / "seed0"
    final = json.loads((run_dir / "final.json").read_text())
    assert np.isfinite(final["normalized_score"]) and final["steps"] == 300
    assert final["manager_source"]["step"] == 100  # the smoke Manager's intents
    config = (run_dir / "config.yaml").read_text()
    assert "weight_decay: 0.001" in config and "algo: my_bc" in config
    with open(run_dir / "metrics.csv", newline="") as f:
        losses = [float(row["actor_loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]  # it learns
    module = importlib.import_module("my_bc_from_guide")
    assert module.MyBCConfig().algo == "my_bc"
    capsys.readouterr()
    assert corl_cli.main(["evaluate", str(run_dir), "--device", "cpu"]) == 0  # found through WORKERS
    out = capsys.readouterr().out
    assert f"normalized_score={final['normalized_score']}" in out and "replays_final_json=True" in out


def test_compile_asked_of_an_algorithm_that_cannot_be_compiled_is_named(my_bc, data_dir, tmp_path, capsys):
    source = my_bc.read_text()
    assert "class MyBC(CompiledLosses):" in source
    my_bc.write_text(source.replace("class MyBC(CompiledLosses):", "class MyBC:"))
    args = ["my_bc", "--env", ENV, "--profile", "smoke", "--runs_dir", str(tmp_path / "runs"), "--data_dir",
            str(data_dir), "--progress", "false", "--eval_num_envs", "2", "--compile", "true"]
    assert corl_cli.main(args) == 2
    err = capsys.readouterr().err
    assert "--compile true: MyBC cannot be compiled" in err and "CompiledLosses" in err
