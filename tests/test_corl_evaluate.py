"""`python -m corl evaluate RUN_DIR`: a trained worker scored again from its checkpoint alone. With the
run's seed and episodes it replays final.json's score exactly (no intents, random intents, the
Manager's planned intents); other seeds or episode counts give their own result files; results are
reported rather than redone; bad folders are clear errors. (DT's per-target replay: test_corl_dt.py.)"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from common.checkpoint import file_sha256
from corl import any_percent_bc as bc
from corl.__main__ import main as corl_main
from corl.shared.evaluate import evaluate_run, result_path
from tests.worker_helpers import ENV, smoke_run


@pytest.mark.parametrize("intent", ["none", "random", "manager"])
def test_the_final_evaluation_replays_from_the_checkpoint(data_dir, tmp_path, smoke_manager, intent):
    extra = ["--manager", str(smoke_manager)] if intent == "manager" else []
    result = smoke_run(bc.train, bc.BCConfig, "bc", data_dir, tmp_path, intent, "--final_eval_episodes", "4", *extra)
    replay = evaluate_run(tmp_path / ENV / "bc" / intent / "seed0", device="cpu")
    assert replay["normalized_score"] == result["normalized_score"] and replay["replays_final_json"]
    assert (replay["episodes"], replay["eval_seed"], replay["checkpoint_step"]) == (4, 0, 200)
    assert replay["normalized_score_std"] == result["normalized_score_std"]
    if intent == "manager":  # final.json names the exact Manager; the replay used the same one
        assert result["manager_source"]["sha256"] == file_sha256(smoke_manager) and result["manager_source"]["step"] == 100
        assert replay["manager_source"] == result["manager_source"] and "manager_changed" not in replay


def test_a_manager_replaced_since_the_run_is_named(data_dir, tmp_path, smoke_manager, capsys):
    mine = tmp_path / "manager.pt"
    shutil.copy(smoke_manager, mine)
    smoke_run(bc.train, bc.BCConfig, "bc", data_dir, tmp_path, "manager", "--manager", str(mine))
    trained_with = file_sha256(mine)
    payload = torch.load(mine, weights_only=True)
    name = next(k for k, v in payload["model"].items() if v.is_floating_point())
    payload["model"][name] = payload["model"][name] + 0.5  # another Manager under the same file name
    torch.save(payload, mine)
    assert corl_main(["evaluate", str(tmp_path / ENV / "bc" / "manager" / "seed0"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "the Manager giving the intents has changed since the run" in err
    assert trained_with[:12] in err and file_sha256(mine)[:12] in err


def test_the_command_writes_reports_and_reevaluates(data_dir, tmp_path, capsys):
    smoke_run(bc.train, bc.BCConfig, "bc", data_dir, tmp_path, "random", "--final_eval_episodes", "4")
    run_dir = tmp_path / ENV / "bc" / "random" / "seed0"
    final = json.loads((run_dir / "final.json").read_text())
    assert corl_main(["evaluate", str(run_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr()
    written = json.loads(result_path(run_dir, 4, 0).read_text())
    assert f"normalized_score={final['normalized_score']}" in out.out and "replays_final_json=True" in out.out
    assert written["normalized_score"] == final["normalized_score"] and f"wrote {result_path(run_dir, 4, 0)}" in out.err
    # the same evaluation again is reported, not redone
    assert corl_main(["evaluate", str(run_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert "exists for this checkpoint (step 200); reporting it" in out.err and "wrote" not in out.err
    # another seed and more episodes: a fresh estimate in its own file
    assert corl_main(["evaluate", str(run_dir), "--episodes", "6", "--seed", "7", "--device", "cpu"]) == 0
    other = json.loads(result_path(run_dir, 6, 7).read_text())
    assert (other["episodes"], other["eval_seed"], other["seed"]) == (6, 7, 0) and "replays_final_json" not in other
    assert np.isfinite(other["normalized_score"])
    capsys.readouterr()
    # --overwrite evaluates again, to the same numbers
    assert corl_main(["evaluate", str(run_dir), "--episodes", "6", "--seed", "7", "--device", "cpu",
                      "--overwrite"]) == 0
    assert "wrote" in capsys.readouterr().err
    assert json.loads(result_path(run_dir, 6, 7).read_text())["normalized_score"] == other["normalized_score"]
    # the run trained again from scratch (other weights, the same step; as an unfinished run redone with
    # --overwrite, whose folder is kept): its old result is not reused
    (run_dir / "final.json").unlink()
    smoke_run(bc.train, bc.BCConfig, "bc", data_dir, tmp_path, "random", "--final_eval_episodes", "4",
              "--actor_lr", "1e-3", "--overwrite", "true")
    assert corl_main(["evaluate", str(run_dir), "--episodes", "6", "--seed", "7", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "was made from another checkpoint (step 200; now step 200): evaluating again" in err and "wrote" in err


def test_bad_folders_and_settings_are_clear_errors(data_dir, tmp_path, capsys):
    assert corl_main(["evaluate", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'nowhere'} holds no checkpoint.pt") and "<algo>/<intent>" in err
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert corl_main(["evaluate", str(tmp_path / "garbage")]) == 2
    assert "checkpoint.pt" in capsys.readouterr().err
    assert corl_main(["evaluate", str(tmp_path), "--episodes", "-3"]) == 2
    assert "--episodes must be at least 0, got -3" in capsys.readouterr().err
    from manager.__main__ import main as manager_main

    smoke_run(bc.train, bc.BCConfig, "bc", data_dir, tmp_path, "none")
    assert manager_main(["evaluate", str(tmp_path / ENV / "bc" / "none" / "seed0")]) == 2
    assert "is not a flat agent's checkpoint" in capsys.readouterr().err
    assert corl_main(["evaluate", str(tmp_path), "--episodes", "-3"]) == 2
    assert "--episodes must be at least 0, got -3" in capsys.readouterr().err
    assert not any(Path(tmp_path).rglob("evaluations"))


def test_several_folders_end_with_a_summary_and_a_bad_one_does_not_stop_the_rest(data_dir, tmp_path, capsys):
    scores = []
    for seed in (0, 1):
        scores.append(smoke_run(bc.train, bc.BCConfig, "bc", data_dir, tmp_path, "none", "--seed", str(seed),
                                "--final_eval_episodes", "4")["normalized_score"])
    runs = [str(tmp_path / ENV / "bc" / "none" / f"seed{seed}") for seed in (0, 1)]
    assert corl_main(["evaluate", runs[0], str(tmp_path / "missing"), runs[1], "--device", "cpu"]) == 2
    out = capsys.readouterr()
    assert f"error: {tmp_path / 'missing'} holds no checkpoint.pt" in out.err
    assert [line for line in out.out.splitlines() if line.startswith("normalized_score=")] == \
        [f"normalized_score={score}" for score in scores]
    table = out.out.split("\n\n")[-1]
    assert table.splitlines()[2] == (f"| {ENV} | bc | none | 4 | 2 | {np.mean(scores):.1f} +- "
                                     f"{np.std(scores, ddof=1):.1f} |")  # the sample std, as the grids'
