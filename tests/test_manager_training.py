"""The Manager and the flat agents learning on a tiny maze2d dataset; export, resume, determinism."""
from __future__ import annotations

import csv
import json
import os
import signal

import numpy as np
import pytest
import torch

from common.interrupt import TrainingInterrupted
from common.run_dir import RunAlreadyComplete
from manager import distributions as D
from manager.__main__ import main as manager_main
from manager.agent import Agent
from manager.checkpoint import CheckpointError, export_manager, load_checkpoint, load_manager_file
from manager.config import apply_profile, make_config, resolve_for_env
from manager.data import SequenceSampler
from manager.inference import ManagerIntents
from manager.trainer import TrainConfig, Trainer, TrainingDiverged, resolve

ENV = "maze2d-umaze-v1"
TRAIN_STEPS = 300


def smoke_config(mode: str):
    return resolve_for_env(apply_profile(make_config(mode), "smoke"), ENV)


@pytest.fixture(scope="module")
def trained_manager(umaze_small):
    """A smoke-size Manager trained TRAIN_STEPS updates on the 6K-step umaze dataset."""
    _, data = umaze_small
    cfg = smoke_config("manager")
    sampler = SequenceSampler(data, cfg.horizon, cfg.k, cfg.reward_scale, seed=0)
    agent = Agent(4, 2, cfg, "cpu", seed=0)
    history = [{k: float(v) for k, v in agent.update(sampler.sample(cfg.batch_size)).items()}
               for _ in range(TRAIN_STEPS)]
    return agent, sampler, history, data


@pytest.fixture
def exported(trained_manager, tmp_path):
    agent, sampler, _, _ = trained_manager
    return export_manager(tmp_path / "manager.pt", env=ENV, obs_dim=4, act_dim=2, cfg=agent.cfg,
                          obs_mean=torch.as_tensor(sampler.obs_mean), obs_std=torch.as_tensor(sampler.obs_std),
                          model_state=agent.model.state_dict(), code_version="test")


def window_mean(history, key, part):
    rows = history[:20] if part == "first" else history[-20:]
    return np.mean([h[key] for h in rows])


@pytest.mark.parametrize("key", ["consistency", "reward", "value", "model_loss"])
def test_manager_losses_fall(trained_manager, key):
    _, _, history, _ = trained_manager
    assert window_mean(history, key, "last") < 0.6 * window_mean(history, key, "first")


@pytest.mark.parametrize("mode", ["iql_td_mpc", "td_mpc"])
def test_flat_agent_losses_fall(umaze_small, mode):
    _, data = umaze_small
    cfg = smoke_config(mode)
    sampler = SequenceSampler(data, cfg.horizon, cfg.k, cfg.reward_scale, seed=0,
                              prioritized=cfg.prioritized_replay)
    agent = Agent(4, 2, cfg, "cpu", seed=0)
    history = []
    for _ in range(200):
        batch = sampler.sample(cfg.batch_size)
        history.append({k: float(v) for k, v in agent.update(batch).items()})
        sampler.update_priorities(batch.index, agent.priorities)
    for key in ("consistency", "model_loss"):
        assert window_mean(history, key, "last") < 0.6 * window_mean(history, key, "first"), key
    if cfg.prioritized_replay:  # TD-MPC: priorities moved away from their initial 1
        assert not torch.allclose(sampler.priorities, torch.ones_like(sampler.priorities))


def test_inverse_dynamics_does_not_collapse(trained_manager, exported):
    agent, sampler, _, data = trained_manager
    batch = sampler.sample(1024)
    with torch.no_grad():
        z = agent.model.encode(batch.obs)
        codes = agent.model.inverse(z[0], z[1]).argmax(-1)  # (B, L)
    classes_used = [len(torch.unique(codes[:, i])) for i in range(codes.shape[1])]
    assert np.mean(classes_used) >= 4, classes_used
    assert len(torch.unique(codes, dim=0)) >= 30
    # the intent says where the agent goes: it linearly explains most of the k-step displacement
    intents = ManagerIntents(exported, env=ENV, device="cpu")
    rng = np.random.default_rng(0)
    starts = rng.choice(sampler.starts.numpy(), 2000)
    later = np.minimum(starts + agent.cfg.k, sampler.last_state.numpy()[starts])
    obs = data["observations"]
    g = intents.pair_intents(obs[starts], obs[later]).numpy()
    displacement = obs[later, :2] - obs[starts, :2]
    features = np.c_[g, np.ones(len(g))]
    coef, *_ = np.linalg.lstsq(features, displacement, rcond=None)
    r2 = 1 - (displacement - features @ coef).var(0) / displacement.var(0)
    assert (r2 > 0.3).all(), r2


def test_export_round_trip_and_intents(trained_manager, exported):
    agent, sampler, _, data = trained_manager
    intents = ManagerIntents(exported, env=ENV, obs_dim=4, device="cpu")
    assert intents.k == 8 and intents.intent_dim == 10
    obs_t, obs_k = data["observations"][:64], data["observations"][8:72]
    with torch.no_grad():  # the same computation straight from the trained agent
        norm = lambda o: (torch.as_tensor(o) - torch.as_tensor(sampler.obs_mean)) / torch.as_tensor(sampler.obs_std)
        z, z_k = agent.model.encode(norm(obs_t)), agent.model.encode(norm(obs_k))
        expected = agent.model.next(z, D.categorical_mode(agent.model.inverse(z, z_k))) - z
    assert torch.allclose(intents.pair_intents(obs_t, obs_k), expected, atol=1e-6)
    planned = intents.plan_intents(obs_t)
    assert planned.shape == (64, 10) and torch.isfinite(planned).all()
    again = ManagerIntents(exported, env=ENV, device="cpu").plan_intents(obs_t)
    assert torch.equal(planned, again)  # same seed, same plans
    # one observation in, one intent out; shapes that do not fit are named, not a broadcasting error
    one = ManagerIntents(exported, env=ENV, device="cpu").plan_intents(list(obs_t[0]))
    assert one.shape == (10,) and torch.equal(one, ManagerIntents(exported, env=ENV, device="cpu").plan_intents(obs_t[:1])[0])
    assert torch.allclose(intents.pair_intents(obs_t[3], obs_k[3]), expected[3], atol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(N, 4\) or \(4,\).*got \(2, 5\)"):
        intents.plan_intents(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="must pair row by row"):
        intents.pair_intents(obs_t[:3], obs_k[:2])


def test_mismatched_or_foreign_checkpoints_are_refused(exported, tmp_path):
    with pytest.raises(CheckpointError, match="maze2d-umaze-v1, not maze2d-large-v1"):
        ManagerIntents(exported, env="maze2d-large-v1", device="cpu")
    with pytest.raises(CheckpointError, match="size 4"):
        ManagerIntents(exported, obs_dim=29, device="cpu")
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an exported Manager"):
        ManagerIntents(tmp_path / "other.pt", device="cpu")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(exported.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        ManagerIntents(corrupt, device="cpu")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ManagerIntents(tmp_path / "missing.pt", device="cpu")
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("garbage")  # torch.load's refusal advises weights_only=False: not passed on
    with pytest.raises(CheckpointError, match="refused its contents") as info:
        ManagerIntents(garbage, device="cpu")
    assert "\n" not in str(info.value) and "False" not in str(info.value)


# --- the trainer: run layout, resume, determinism, divergence, CLI ------------------------------
def train_run(data_dir, runs_dir, mode="manager", **kw):
    cfg = TrainConfig(mode=mode, env=ENV, profile="smoke", steps=kw.pop("steps", 200), runs_dir=str(runs_dir),
                      data_dir=str(data_dir), log_every=50, checkpoint_every=100, progress=False, **kw)
    return Trainer(resolve(cfg)).train()


def metrics_without_timing(run_path):
    with open(run_path / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "steps_per_s"} for row in csv.DictReader(f)]


@pytest.mark.parametrize("mode", ["manager", "td_mpc"])
def test_resume_equals_uninterrupted_and_same_seed_same_numbers(data_dir, tmp_path, mode):
    whole = train_run(data_dir, tmp_path / "a", mode)
    assert train_run(data_dir, tmp_path / "b", mode, chunk_steps=100) is None  # stopped at step 100
    # resumed with settings that change the numbers: refused, each named (the checkpoint stays)
    with pytest.raises(CheckpointError, match=r"other settings \(eval_episodes 2 -> 3; steps 200 -> 300\)"):
        train_run(data_dir, tmp_path / "b", mode, steps=300, eval_episodes=3)
    with pytest.raises(CheckpointError, match=r"other settings \(lr 0.0003 -> 0.001\)" if mode == "manager"
                       else r"other settings \(lr 0.001 -> 0.0003\)"):
        Trainer(resolve(TrainConfig(mode=mode, env=ENV, profile="smoke", steps=200, runs_dir=str(tmp_path / "b"),
                                    data_dir=str(data_dir), log_every=50, checkpoint_every=100, progress=False),
                        {"lr": 1e-3 if mode == "manager" else 3e-4})).train()
    resumed = train_run(data_dir, tmp_path / "b", mode, chunk_steps=100, time_limit_s=3600.0)
    path_a, path_b = (tmp_path / x / ENV / mode / "seed0" for x in "ab")
    rows = metrics_without_timing(path_a)
    assert [int(r["step"]) for r in rows] == [50, 100, 150, 200]
    assert rows == metrics_without_timing(path_b)
    state_a, state_b = (load_checkpoint(p / "checkpoint.pt")["agent"]["model"] for p in (path_a, path_b))
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    if mode == "td_mpc":
        assert whole["normalized_score"] == resumed["normalized_score"]
    else:
        assert (path_a / "manager.pt").is_file() and json.loads((path_a / "final.json").read_text())["steps"] == 200
    other_seed = train_run(data_dir, tmp_path / "c", mode, seed=1)
    assert other_seed is not None and metrics_without_timing(tmp_path / "c" / ENV / mode / "seed1") != rows
    with pytest.raises(RunAlreadyComplete):
        train_run(data_dir, tmp_path / "a", mode)


def test_snapshots_are_the_managers_of_shorter_runs(data_dir, tmp_path):
    """--snapshot-every exports the Manager along the way: the snapshot at step N holds the weights
    a run of N steps exports, a resumed run writes the same snapshots, the last one is manager.pt."""
    train_run(data_dir, tmp_path / "a", snapshot_every=100)
    assert train_run(data_dir, tmp_path / "b", snapshot_every=100, chunk_steps=100) is None
    train_run(data_dir, tmp_path / "b", snapshot_every=100, chunk_steps=100)
    train_run(data_dir, tmp_path / "short", steps=100)
    run_a, run_b, short = (tmp_path / x / ENV / "manager" / "seed0" for x in ("a", "b", "short"))
    names = sorted(p.name for p in (run_a / "snapshots").iterdir())
    assert names == ["manager_step0000100.pt", "manager_step0000200.pt"]
    assert sorted(p.name for p in (run_b / "snapshots").iterdir()) == names
    assert not (short / "snapshots").exists()  # none unless asked

    def model(path):
        payload = load_manager_file(path, env=ENV, obs_dim=4)
        return payload["step"], payload["model"]

    def same(a, b):
        return a[0] == b[0] and all(torch.equal(a[1][k], b[1][k]) for k in a[1])

    snap100, snap200 = (model(run_a / "snapshots" / name) for name in names)
    assert snap100[0] == 100 and snap200[0] == 200 and not same(snap100, snap200)
    assert same(snap100, model(short / "manager.pt"))
    assert same(snap200, model(run_a / "manager.pt"))
    assert all(same(model(run_a / "snapshots" / n), model(run_b / "snapshots" / n)) for n in names)
    with pytest.raises(ValueError, match="multiple of checkpoint_every"):
        train_run(data_dir, tmp_path / "c", snapshot_every=150)
    with pytest.raises(ValueError, match="--mode manager"):
        train_run(data_dir, tmp_path / "c", "td_mpc", snapshot_every=100)


def test_sigterm_stops_at_the_next_log_row_and_resumes_bit_for_bit(signals_as_at_a_terminal, data_dir, tmp_path, monkeypatch):
    """SIGTERM (the grid stopping a cell) at update 130, log rows every 50: the Manager trains on to
    150, checkpoints there and stops with a clear error; resumed, it ends as an uninterrupted run."""
    train_run(data_dir, tmp_path / "a", "manager")
    original = Agent.update

    def update_then_sigterm(self, batch):
        if self.step == 129:  # this is update 130
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, batch)

    monkeypatch.setattr(Agent, "update", update_then_sigterm)
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM at step 150/200"):
        train_run(data_dir, tmp_path / "b", "manager")
    path_a, path_b = (tmp_path / x / ENV / "manager" / "seed0" for x in "ab")
    assert load_checkpoint(path_b / "checkpoint.pt")["agent"]["step"] == 150 and not (path_b / "final.json").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.undo()
    train_run(data_dir, tmp_path / "b", "manager")
    assert metrics_without_timing(path_a) == metrics_without_timing(path_b)
    model_a, model_b = (load_manager_file(p / "manager.pt")["model"] for p in (path_a, path_b))
    assert all(torch.equal(model_a[k], model_b[k]) for k in model_a)


def test_diverging_loss_stops_naming_step_and_loss(data_dir, tmp_path, monkeypatch):
    original = Agent.update

    def update_with_nan(self, batch):
        metrics = original(self, batch)
        if self.step == 130:
            metrics["critic"] = torch.tensor(float("nan"))
        return metrics

    monkeypatch.setattr(Agent, "update", update_with_nan)
    with pytest.raises(TrainingDiverged, match=r"critic.*step 130"):
        train_run(data_dir, tmp_path, "manager")
    run_path = tmp_path / ENV / "manager" / "seed0"
    assert load_checkpoint(run_path / "checkpoint.pt")["agent"]["step"] == 100  # the last good one stays
    assert not (run_path / "final.json").exists()


def test_cli_trains_a_flat_agent_and_reports_the_score(data_dir, tmp_path, capsys):
    args = ["--mode", "iql_td_mpc", "--env", ENV, "--profile", "smoke", "--steps", "100",
            "--runs-dir", str(tmp_path), "--data-dir", str(data_dir), "--no-progress", "--eval-episodes", "2"]
    assert manager_main(["train", *args]) == 0
    final = json.loads((tmp_path / ENV / "iql_td_mpc" / "seed0" / "final.json").read_text())
    assert final["eval_episodes"] == 2 and -50 < final["normalized_score"] < 400
    assert final["machine"].endswith(f"torch threads {torch.get_num_threads()})")
    assert f"normalized_score={final['normalized_score']}" in capsys.readouterr().out
    assert manager_main(["train", *args]) == 2  # finished: not overwritten silently
    assert "already holds a finished run" in capsys.readouterr().err
    assert manager_main(["config", "--mode", "manager", "--env", "antmaze-large-play-v2"]) in (0, 2)
    assert manager_main(["config", "--mode", "manager", "--env", "maze2d-nowhere-v1"]) == 2
    assert "maze2d-umaze-v1" in capsys.readouterr().err  # the known names are listed
    assert manager_main(["config", "--mode", "manager", "--env", ENV, "--set", "horizon=7", "--set", "mlp_dim=1e2",
                         "--set", "prioritized_replay=yes"]) == 0
    out = capsys.readouterr().out
    assert "horizon: 7" in out and "mlp_dim: 100" in out and "prioritized_replay: true" in out


@pytest.mark.parametrize("extra,message", [
    (["--steps", "-5"], "--steps must be at least 1, got -5"),  # would export an untrained Manager as finished
    (["--log-every", "0"], "--log-every must be at least 1, got 0"),  # would divide by zero
    (["--eval-episodes", "0"], "--eval-episodes must be at least 1, got 0"),  # would fail after training
    (["--set", "batch_size=0"], "batch_size (--set batch_size=N) must be at least 1, got 0"),
    (["--set", "num_classes=1"], "a discrete action needs num_classes >= 2"),
    (["--set", "gamma=9.9"], "gamma (--set gamma=...) must be in (0, 1], got 9.9"),  # a typo for 0.99
    (["--set", "iql_tau=1.5"], "iql_tau (--set iql_tau=...) must be in (0, 1), got 1.5 (default: 0.9)"),
    (["--set", "lr=-1"], "lr (--set lr=...) must be positive, got -1"),
    (["--set", "lr=abc"], "--set lr=abc: lr takes a number"),
    (["--set", "prioritized_replay=flase"], "prioritized_replay takes true or false"),  # was read as False
    (["--set", "iql_taw=0.5"], "expected KEY=VALUE (did you mean iql_tau?)"),
])
def test_cli_refuses_bad_counts_before_reading_data(tmp_path, capsys, extra, message):
    missing = tmp_path / "no-data"  # not read: the settings fail first
    args = ["--env", ENV, "--profile", "smoke", "--runs-dir", str(tmp_path), "--data-dir", str(missing), *extra]
    assert manager_main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / ENV).exists() and not missing.exists()


def test_task_dependent_settings_and_the_manager_discount():
    manager = resolve_for_env(make_config("manager"), ENV)
    assert manager.gamma == pytest.approx(0.99 ** 8) and manager.k == 8  # SMDP: 0.99 per env step over k
    assert (manager.reward_scale, manager.iql_beta, manager.critic_loss) == (0.1, pytest.approx(30.0), "td")
    k4 = resolve_for_env(make_config("manager", k=4), ENV, frozenset({"k"}))
    assert k4.gamma == pytest.approx(0.99 ** 4)
    assert resolve_for_env(make_config("manager", gamma=0.99), ENV, frozenset({"gamma"})).gamma == 0.99
    large = resolve_for_env(make_config("manager"), "antmaze-large-play-v2")
    assert (large.reward_scale, large.iql_beta, large.critic_loss) == (1.0, pytest.approx(3.0), "iql")
    assert resolve_for_env(make_config("iql_td_mpc"), ENV).gamma == 0.99  # flat agents: per env step


def test_a_resumed_run_names_the_commit_it_started_with(data_dir, tmp_path, monkeypatch):
    """HEAD moving while a (resumed) run trains does not relabel the code it ran: the commit is read
    when the call starts, as the process's modules were loaded."""
    import functools

    import manager.trainer as trainer_module

    head = {"commit": "old"}
    assert train_run(data_dir, tmp_path, "manager", chunk_steps=100) is None
    monkeypatch.setattr(trainer_module, "code_version", functools.cache(lambda: head["commit"]))  # a fresh process
    original = Agent.update

    def update_then_commit(self, batch):
        head["commit"] = "new"  # work lands while the run trains
        return original(self, batch)

    monkeypatch.setattr(Agent, "update", update_then_commit)
    result = train_run(data_dir, tmp_path, "manager", chunk_steps=100)
    assert result["code_version"] == "old"
