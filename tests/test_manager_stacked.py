"""Several seeds in one process: StackedAgents (parameters on a leading seed axis, one vmapped
update) trains each seed as its own Agent would, and hands the state back to the agents."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal

import pytest
import torch

from manager.__main__ import main as manager_main
from manager.agent import Agent
from manager.checkpoint import load_checkpoint
from manager.config import apply_profile, make_config, resolve_for_env
from manager.data import SequenceSampler
from manager.stacked import StackedAgents, clip_grad_norm_per_seed, stack_batches, stack_noise
from manager.stacked_training import train_stacked
from manager.trainer import TrainConfig, resolve

MODES = ["manager", "iql_td_mpc", "td_mpc"]
SEEDS = [0, 1, 2]
CLOSE = dict(rtol=1e-4, atol=1e-5)


def smoke_config(mode: str, **overrides):
    return resolve_for_env(apply_profile(make_config(mode, **overrides), "smoke"), "maze2d-umaze-v1")


def make_agents(cfg, seeds=SEEDS) -> list[Agent]:
    return [Agent(4, 2, cfg, "cpu", seed=s) for s in seeds]


def batches_for(data, cfg, updates: int) -> list[list]:
    """updates x seeds batches, each seed from its own sampler (uniform sampling: the same batches
    feed both runs, so a rounding-level difference in priorities cannot change what is drawn)."""
    samplers = [SequenceSampler(data, cfg.horizon, cfg.k, cfg.reward_scale, seed=s) for s in SEEDS]
    return [[sm.sample(cfg.batch_size) for sm in samplers] for _ in range(updates)]


def assert_agents_close(got: Agent, want: Agent) -> None:
    for (name, p), q in zip(want.model.named_parameters(), got.model.parameters()):
        torch.testing.assert_close(q, p, **CLOSE, msg=f"model {name}")
    for (name, p), q in zip(want.target.named_parameters(), got.target.parameters()):
        torch.testing.assert_close(q, p, **CLOSE, msg=f"target {name}")
    for opt in ("model_optim", "pi_optim"):
        g, w = getattr(got, opt).state_dict(), getattr(want, opt).state_dict()
        assert g["state"].keys() == w["state"].keys()
        for index, entry in w["state"].items():
            for key, value in entry.items():
                torch.testing.assert_close(g["state"][index][key], value, **CLOSE, msg=f"{opt} {index} {key}")
    assert got.step == want.step
    assert torch.equal(got.generator.get_state(), want.generator.get_state())


@pytest.mark.parametrize("mode", MODES)
def test_stacked_update_equals_separate_agents(umaze_small, mode):
    # td_mpc with its prioritised replay: the per-seed priorities come out of the stacked update too
    cfg = smoke_config(mode, target_update_every=2)
    alone, together = make_agents(cfg), make_agents(cfg)
    stacked = StackedAgents(together)
    assert len(stacked) == 3 and stacked.params["policy.0.weight"].shape[0] == 3
    for batches in batches_for(umaze_small[1], cfg, updates=4):
        got = stacked.update(batches)
        for seed, (agent, batch) in enumerate(zip(alone, batches)):
            want = agent.update(batch)
            assert got.keys() == want.keys()
            for key in want:
                torch.testing.assert_close(got[key][seed], want[key], **CLOSE, msg=f"seed {seed} {key}")
            torch.testing.assert_close(stacked.latents[seed], agent.latents, **CLOSE)
            if cfg.prioritized_replay:
                torch.testing.assert_close(stacked.priorities[seed], agent.priorities, **CLOSE)
    assert (stacked.priorities is not None) == cfg.prioritized_replay
    # the seeds stay different models: seed 0's update did not leak into seed 1's
    assert not torch.allclose(stacked.params["policy.0.weight"][0], stacked.params["policy.0.weight"][1])
    stacked.write_back()
    for got, want in zip(together, alone):
        assert_agents_close(got, want)


def test_stacking_resumed_agents_and_continuing_alone(umaze_small):
    """Agents with Adam moments (as after a resume) stack with them; after write_back each agent
    continues alone exactly where the stacked run left it."""
    cfg = smoke_config("iql_td_mpc")
    schedule = batches_for(umaze_small[1], cfg, updates=5)
    alone, together = make_agents(cfg), make_agents(cfg)
    for batches in schedule:
        for agent, batch in zip(alone, batches):
            agent.update(batch)
    for batches in schedule[:2]:  # two updates alone
        for agent, batch in zip(together, batches):
            agent.update(batch)
    stacked = StackedAgents(together)  # two stacked
    for batches in schedule[2:4]:
        stacked.update(batches)
    stacked.write_back()
    for agent, batch in zip(together, schedule[4]):  # and the last one alone again
        agent.update(batch)
    for got, want in zip(together, alone):
        assert_agents_close(got, want)


def test_per_seed_clipping_matches_torch():
    torch.manual_seed(0)
    grads = [torch.randn(3, 4, 5), torch.randn(3, 7)]
    for g in grads:
        g[1] *= 0.01  # seed 1 below the threshold: left as is
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norms = clip_grad_norm_per_seed(params, max_norm=1.0)
    for seed in range(3):
        own = [torch.zeros_like(g[seed], requires_grad=True) for g in grads]
        for p, g in zip(own, grads):
            p.grad = g[seed].clone()
        torch.testing.assert_close(norms[seed], torch.nn.utils.clip_grad_norm_(own, 1.0))
        for p, q in zip(params, own):
            torch.testing.assert_close(p.grad[seed], q.grad)
    assert norms[1] < 1.0 < norms[0] and torch.equal(params[0].grad[1], grads[0][1])


def test_stacking_refuses_mismatched_agents(umaze_small):
    cfg = smoke_config("manager")
    with pytest.raises(ValueError, match="share one config"):
        StackedAgents([Agent(4, 2, cfg, seed=0), Agent(4, 2, smoke_config("manager", lr=1e-4), seed=1)])
    ahead = Agent(4, 2, cfg, seed=1)
    ahead.update(batches_for(umaze_small[1], cfg, 1)[0][0])
    with pytest.raises(ValueError, match="same step"):
        StackedAgents([Agent(4, 2, cfg, seed=0), ahead])
    stacked = StackedAgents(make_agents(cfg, [0, 1]))
    with pytest.raises(ValueError, match="3 batches for 2"):
        stacked.update(batches_for(umaze_small[1], cfg, 1)[0])


@pytest.mark.parametrize("mode", MODES)
def test_stacked_losses_trace_as_one_graph_and_compile(umaze_small, mode):
    """The vmapped update of all seeds is one graph for torch.compile too (no breaks), and compiled
    (AOTAutograd's joint graph) it trains like the eager stacked update."""
    cfg = smoke_config(mode)
    schedule = batches_for(umaze_small[1], cfg, updates=3)
    eager, compiled = StackedAgents(make_agents(cfg)), StackedAgents(make_agents(cfg))
    probe = StackedAgents(make_agents(cfg))
    noise = stack_noise([a.draw_noise(cfg.horizon, cfg.batch_size) for a in probe.agents])
    explained = torch._dynamo.explain(probe._vmapped_losses)(probe.params, probe.target_params, probe.buffers,
                                                             stack_batches(schedule[0]), noise)
    assert explained.graph_break_count == 0, [str(r.reason) for r in explained.break_reasons]
    assert explained.graph_count == 1
    compiled.compile(backend="aot_eager")
    for batches in schedule:
        got, want = compiled.update(batches), eager.update(batches)
        for key in want:
            torch.testing.assert_close(got[key], want[key], **CLOSE, msg=key)
    for name, value in eager.params.items():
        torch.testing.assert_close(compiled.params[name], value, **CLOSE, msg=name)


# --- the trainer: python -m manager train --seeds ----------------------------------------------
ENV = "maze2d-umaze-v1"


def train_args(data_dir, runs_dir, mode="manager", *extra):
    return ["train", "--mode", mode, "--env", ENV, "--profile", "smoke", "--steps", "200", "--runs-dir",
            str(runs_dir), "--data-dir", str(data_dir), "--log-every", "50", "--checkpoint-every", "100",
            "--no-progress", *extra]


def metric_rows(run_path) -> list[dict[str, float]]:
    with open(run_path / "metrics.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if k != "steps_per_s"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("mode", ["manager", "td_mpc"])
def test_seeds_train_in_one_process_as_they_would_alone(data_dir, tmp_path, capsys, mode):
    assert manager_main(train_args(data_dir, tmp_path / "stacked", mode, "--seeds", "0,1")) == 0
    printed = capsys.readouterr().out
    assert "seed=0" in printed and "seed=1" in printed
    assert manager_main(train_args(data_dir, tmp_path / "alone", mode, "--seed", "1")) == 0
    got, want = (tmp_path / x / ENV / mode / "seed1" for x in ("stacked", "alone"))
    for a, b in zip(metric_rows(got), metric_rows(want), strict=True):
        assert a["step"] == b["step"]
        for key in b:  # 200 updates apart from float rounding (batched matmuls)
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), (int(b["step"]), key)
    final = json.loads((got / "final.json").read_text())
    assert final["steps"] == 200 and final["seed"] == 1
    seed0 = tmp_path / "stacked" / ENV / mode / "seed0"
    assert metric_rows(seed0) != metric_rows(got)  # two seeds, two runs
    if mode == "manager":
        assert (got / "manager.pt").is_file() and "decoder" in metric_rows(got)[0]
    else:  # flat agents are scored by MPC per seed, as alone
        alone_final = json.loads((want / "final.json").read_text())
        assert final["eval_episodes"] == alone_final["eval_episodes"]
        assert final["normalized_score"] == pytest.approx(alone_final["normalized_score"], abs=0.5)


def test_stacked_run_resumes_bit_for_bit_and_levels_seeds_at_other_steps(data_dir, tmp_path, capsys):
    assert manager_main(train_args(data_dir, tmp_path / "whole", "manager", "--seeds", "0,1")) == 0
    for _ in range(2):  # two calls of 100 steps
        assert manager_main(train_args(data_dir, tmp_path / "chunks", "manager", "--seeds", "0,1",
                                       "--chunk-steps", "100")) == 0
    for seed in (0, 1):
        a, b = (tmp_path / x / ENV / "manager" / f"seed{seed}" for x in ("whole", "chunks"))
        assert metric_rows(a) == metric_rows(b)
        state_a, state_b = (load_checkpoint(p / "checkpoint.pt") for p in (a, b))
        for part in ("model", "target"):
            assert all(torch.equal(state_a["agent"][part][k], state_b["agent"][part][k]) for k in state_a["agent"][part])
    # seed 0 alone for 100 steps, seed 1 not started: seed 1 catches up alone, then both go on stacked
    assert manager_main(train_args(data_dir, tmp_path / "mixed", "manager", "--seed", "0", "--chunk-steps", "100")) == 0
    mixed = TrainConfig(mode="manager", env=ENV, profile="smoke", steps=200, runs_dir=str(tmp_path / "mixed"),
                        data_dir=str(data_dir), log_every=50, checkpoint_every=100, progress=False)
    alone_rows = metric_rows(tmp_path / "mixed" / ENV / "manager" / "seed0")
    # a chunk limit that ends the call before the seeds are level: seed 1 stops at its checkpoint
    assert train_stacked(resolve(dataclasses.replace(mixed, chunk_steps=50)), [0, 1]) == [None, None]
    assert "seed 1 resumes at step 0, behind step 100: training it alone" in capsys.readouterr().err
    steps = [load_checkpoint(tmp_path / "mixed" / ENV / "manager" / f"seed{s}" / "checkpoint.pt")["agent"]["step"]
             for s in (0, 1)]
    assert steps == [100, 50]
    results = train_stacked(resolve(mixed), [0, 1])
    assert [(r["seed"], r["steps"]) for r in results] == [(0, 200), (1, 200)]
    assert "seed 1 resumes at step 50, behind step 100: training it alone" in capsys.readouterr().err
    for seed in (0, 1):  # the same numbers as the lockstep run, up to float rounding
        got, want = (metric_rows(tmp_path / x / ENV / "manager" / f"seed{seed}") for x in ("mixed", "whole"))
        assert [row["step"] for row in got] == [row["step"] for row in want] == [50, 100, 150, 200]
        for a, b in zip(got, want):
            for key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), (seed, int(b["step"]), key)
    assert metric_rows(tmp_path / "mixed" / ENV / "manager" / "seed0")[:2] == alone_rows
    assert manager_main(train_args(data_dir, tmp_path / "bad", "manager", "--seeds", "0,x")) == 2
    assert manager_main(train_args(data_dir, tmp_path / "bad", "manager", "--seeds", "0,1", "--seed", "3")) == 2
    assert "not both" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    # finished seeds are skipped, the others train: seed 2 joins the finished 0 and 1
    done = load_checkpoint(tmp_path / "whole" / ENV / "manager" / "seed1" / "checkpoint.pt")
    results = train_stacked(resolve(dataclasses.replace(mixed, runs_dir=str(tmp_path / "whole"))), [0, 1, 2])
    assert [r["seed"] for r in results] == [2]
    assert "seeds [0, 1] have finished runs" in capsys.readouterr().err
    again = load_checkpoint(tmp_path / "whole" / ENV / "manager" / "seed1" / "checkpoint.pt")
    assert all(torch.equal(done["agent"]["model"][k], again["agent"]["model"][k]) for k in done["agent"]["model"])


def test_ctrl_c_stops_every_seed_at_the_next_log_row(signals_as_at_a_terminal, data_dir, tmp_path, capsys, monkeypatch):
    """SIGINT during stacked update 130 (rows every 50): both seeds train on to 150 and checkpoint there,
    the CLI names it (exit status 2); the same command then ends as the uninterrupted stacked run."""
    assert manager_main(train_args(data_dir, tmp_path / "whole", "manager", "--seeds", "0,1")) == 0
    original = StackedAgents.update

    def update_then_ctrl_c(self, batches):
        if self.step == 129:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batches)

    monkeypatch.setattr(StackedAgents, "update", update_then_ctrl_c)
    capsys.readouterr()
    assert manager_main(train_args(data_dir, tmp_path / "cut", "manager", "--seeds", "0,1")) == 2
    err = capsys.readouterr().err
    assert "SIGINT: stopping at the next log row" in err and "error: interrupted by SIGINT at step 150/200" in err
    for seed in (0, 1):
        path = tmp_path / "cut" / ENV / "manager" / f"seed{seed}"
        assert load_checkpoint(path / "checkpoint.pt")["agent"]["step"] == 150 and not (path / "final.json").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.undo()
    assert manager_main(train_args(data_dir, tmp_path / "cut", "manager", "--seeds", "0,1")) == 0
    for seed in (0, 1):
        a, b = (tmp_path / x / ENV / "manager" / f"seed{seed}" for x in ("whole", "cut"))
        assert metric_rows(a) == metric_rows(b)


def test_a_diverging_seed_stops_alone_and_the_others_go_on(data_dir, tmp_path, capsys, monkeypatch):
    original = StackedAgents.update

    def update_with_nan_in_seed_1(self, batches):
        metrics = original(self, batches)
        if len(self) == 3 and self.step == 130:
            metrics["critic"] = metrics["critic"].clone()
            metrics["critic"][1] = float("nan")
        return metrics

    monkeypatch.setattr(StackedAgents, "update", update_with_nan_in_seed_1)
    assert manager_main(train_args(data_dir, tmp_path / "stacked", "manager", "--seeds", "0-2")) == 2
    out, err = capsys.readouterr()
    assert "seed 1: training diverged: loss critic became non-finite" in err and "at step 130" in err
    assert "seeds [1] diverged (their last good checkpoints are kept); seeds 0,2 go on" in err
    assert "seed=0" in out and "seed=2" in out and "seed=1" not in out  # the others' results, reported
    runs = tmp_path / "stacked" / ENV / "manager"
    assert load_checkpoint(runs / "seed1" / "checkpoint.pt")["agent"]["step"] == 100 and not (runs / "seed1" / "final.json").exists()
    monkeypatch.setattr(StackedAgents, "update", original)
    assert manager_main(train_args(data_dir, tmp_path / "alone", "manager", "--seed", "2")) == 0
    for seed in (0, 2):
        assert json.loads((runs / f"seed{seed}" / "final.json").read_text())["steps"] == 200
    for a, b in zip(metric_rows(runs / "seed2"), metric_rows(tmp_path / "alone" / ENV / "manager" / "seed2"), strict=True):
        for key in b:  # stacked with 3, then with 2 seeds: still the numbers of training alone
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), (int(b["step"]), key)
    # the run again: seed 1 resumes from its last good checkpoint (and no longer diverges)
    assert manager_main(train_args(data_dir, tmp_path / "stacked", "manager", "--seeds", "0-2")) == 0
    assert json.loads((runs / "seed1" / "final.json").read_text())["steps"] == 200


def test_a_seed_diverging_while_catching_up_leaves_the_others_to_go_on(data_dir, tmp_path, capsys, monkeypatch):
    assert manager_main(train_args(data_dir, tmp_path, "manager", "--seed", "0", "--chunk-steps", "100")) == 0
    original = Agent.update

    def update_with_nan_at_step_30(self, batch):  # only seed 1, catching up alone, updates through Agent.update
        metrics = original(self, batch)
        if self.step == 30:
            metrics["critic"] = torch.tensor(float("nan"))
        return metrics

    monkeypatch.setattr(Agent, "update", update_with_nan_at_step_30)
    assert manager_main(train_args(data_dir, tmp_path, "manager", "--seeds", "0,1")) == 2
    out, err = capsys.readouterr()
    assert "seed 1: training diverged: loss critic became non-finite" in err and "at step 30" in err
    assert "seed=0" in out and "steps=200" in out and "seed=1" not in out
    runs = tmp_path / ENV / "manager"
    assert (runs / "seed0" / "final.json").is_file() and not (runs / "seed1" / "final.json").exists()
    assert not (runs / "seed1" / "checkpoint.pt").exists()  # no good checkpoint before step 30


def test_compile_flag_with_seeds_compiles_the_stacked_update(data_dir, tmp_path, monkeypatch):
    calls = []
    original = StackedAgents.compile

    def compile_with_aot_eager(self, **kwargs):
        calls.append((len(self), kwargs))
        original(self, backend="aot_eager")

    monkeypatch.setattr(StackedAgents, "compile", compile_with_aot_eager)
    cfg = TrainConfig(mode="manager", env=ENV, profile="smoke", steps=20, runs_dir=str(tmp_path),
                      data_dir=str(data_dir), log_every=10, checkpoint_every=10, progress=False, compile=True,
                      compile_mode="reduce-overhead")
    results = train_stacked(resolve(cfg), [0, 1])
    assert calls == [(2, {"mode": "reduce-overhead"})]  # --compile-mode reaches the stacked update too
    assert [r["seed"] for r in results] == [0, 1] and all(r["steps"] == 20 for r in results)
