"""The speed scripts the GPU session runs (benchmarks/): they run end to end at tiny sizes and
write figures that make sense, so device time is never spent on a script that fails."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import dt_batch_cost, manager_speed, update_op_count, worker_speed  # noqa: E402


def test_worker_speed_times_every_worker_and_writes_json(tmp_path):
    out = tmp_path / "speed.json"
    worker_speed.main(["--device", "cpu", "--updates", "2", "--rounds", "1", "--dt-batch", "4",
                       "--dt-updates", "1", "--out", str(out)])
    data = json.loads(out.read_text())
    assert set(data["results"]) == {"bc", "td3_bc", "iql", "awac", "cql", "dt", "idql"}
    assert all(row["ours_updates_per_s"] > 0 for row in data["results"].values())
    assert data["results"]["dt"]["batch_size"] == 4 and data["results"]["idql"]["batch_size"] == 512
    assert data["device"] == "cpu" and "corl_updates_per_s" not in data["results"]["bc"]  # no --corl given


def test_worker_speed_times_the_compiled_update_beside_the_eager_one(tmp_path, capsys):
    out = tmp_path / "compiled.json"
    worker_speed.main(["--device", "cpu", "--algos", "td3_bc,dt", "--updates", "2", "--rounds", "2", "--dt-batch", "4",
                       "--dt-updates", "2", "--compile", "aot_eager", "--compile-mode", "reduce-overhead",
                       "--out", str(out)])
    data = json.loads(out.read_text())
    assert (data["compile_backend"], data["compile_mode"]) == ("aot_eager", "reduce-overhead")
    for row in data["results"].values():
        assert row["compiled_updates_per_s"] > 0 and row["compile_s"] >= 0
        assert row["compiled_over_eager"] == pytest.approx(row["compiled_updates_per_s"] / row["ours_updates_per_s"],
                                                           rel=0.5)  # (median of per-round ratios)
        assert 0 <= row["compiled_max_param_gap"] < 1e-5  # trained like the eager update
    with pytest.raises(SystemExit):
        worker_speed.main(["--compile-mode", "reduce-overhead"])
    assert "--compile-mode needs --compile" in capsys.readouterr().err


def test_corl_stand_in_modules_decorate_and_hide_their_dunders(monkeypatch):
    """CORL's imports of d4rl/gym/wandb get stand-ins; inspect (torch.compile walks sys.modules'
    files through it) must still see an ordinary module without a __file__."""
    import inspect

    module = worker_speed._stand_in("not_installed")
    assert module.anything("arg")(len) is len  # a do-nothing decorator factory
    with pytest.raises(AttributeError):
        module.__file__  # noqa: B018
    monkeypatch.setitem(sys.modules, "not_installed", module)
    inspect.getmodule((lambda: 0).__code__, _filename="/nowhere/at_all.py")  # walks every module's __file__


def test_dt_sequences_pad_tails_like_the_sequence_buffer():
    states, actions, returns, time_steps, mask = worker_speed.random_sequences(1, 256, "cpu")[0]
    assert states.shape == (256, 20, worker_speed.STATE_DIM) and actions.shape == (256, 20, worker_speed.ACTION_DIM)
    assert time_steps.dtype == torch.long and int(time_steps.max()) < worker_speed.DT_EPISODE_LEN + 20
    padded = mask == 0
    assert padded.any() and (mask[:, 0] == 1).all()  # some tails padded, every sequence starts valid
    assert (mask[:, 1:] <= mask[:, :-1]).all()  # padding only at the end
    assert (states[padded] == 0).all() and (actions[padded] == 0).all() and (returns[padded] == 0).all()


def test_dt_batch_cost_writes_seconds_per_batch(tmp_path):
    out = tmp_path / "dt.json"
    dt_batch_cost.main(["--device", "cpu", "--batches", "2,4", "--seconds", "0.01", "--out", str(out)])
    costs = json.loads(out.read_text())["seconds_per_update"]
    assert set(costs) == {"2", "4"} and all(v > 0 for v in costs.values())


def test_manager_speed_times_eager_compiled_and_stacked_updates_and_planning(tmp_path):
    out = tmp_path / "manager.json"
    manager_speed.main(["--device", "cpu", "--profiles", "smoke", "--modes", "manager,iql_td_mpc", "--seconds", "0.3",
                        "--compile", "aot_eager", "--stacked-seeds", "2", "--dataset-steps", "3000",
                        "--plan-envs", "1,3", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["compile_backend"] == "aot_eager" and [row["mode"] for row in data["rows"]] == ["manager", "iql_td_mpc"]
    assert data["compile_mode"] is None
    for row in data["rows"]:
        assert row["updates_per_s"] > 0 and row["updates_per_s_compiled"] > 0 and row["compile_s"] >= 0  # (0.0: a cache hit)
        assert abs(row["compiled_over_eager"] - row["updates_per_s_compiled"] / row["updates_per_s"]) < 0.01
        assert 0 <= row["compiled_max_param_gap"] < 1e-4  # the compiled update trained like the eager one
        assert row["stacked_seeds"] == 2 and row["seed_updates_per_s_sequential"] > 0
        ratio = row["seed_updates_per_s_stacked"] / row["seed_updates_per_s_sequential"]
        assert abs(row["stacked_over_sequential"] - ratio) < 0.01
        assert row["seed_updates_per_s_stacked_compiled"] > 0 and row["stacked_compile_s"] > 0
        assert all(row[f"plan_ms_{n}_envs{kind}"] > 0 for n in (1, 3) for kind in ("", "_compiled"))


def test_manager_speed_passes_a_compile_mode_and_refuses_one_without_compile(tmp_path, capsys):
    out = tmp_path / "manager.json"
    manager_speed.main(["--device", "cpu", "--profiles", "smoke", "--modes", "iql_td_mpc", "--seconds", "0.2",
                        "--compile", "aot_eager", "--compile-mode", "reduce-overhead", "--no-plan",
                        "--dataset-steps", "3000", "--out", str(out)])
    data = json.loads(out.read_text())
    assert data["compile_mode"] == "reduce-overhead" and data["rows"][0]["updates_per_s_compiled"] > 0
    with pytest.raises(SystemExit):
        manager_speed.main(["--compile-mode", "reduce-overhead"])
    assert "--compile-mode needs --compile" in capsys.readouterr().err


def test_update_op_count_splits_an_update_by_phase_and_does_not_grow_with_width(umaze_small):
    """The launch-bound argument of docs/manager.md: the op count is the same at smoke and paper widths."""
    data = umaze_small[1]
    smoke = update_op_count.count_update_ops(data, "iql_td_mpc", "smoke")
    assert smoke["total"] == smoke["forward"] + smoke["backward"] + smoke["optimizer"]
    assert min(smoke["forward"], smoke["backward"], smoke["optimizer"]) > 0
    assert update_op_count.count_update_ops(data, "iql_td_mpc", "paper") == smoke
    # the Manager's horizon of 4 (against 2) and its inverse dynamics issue more ops per update
    assert update_op_count.count_update_ops(data, "manager", "smoke")["total"] > smoke["total"]
