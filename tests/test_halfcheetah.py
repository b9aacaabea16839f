"""halfcheetah-*-v2: env facts, the SAC trainer, actor snapshots, dataset generation."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import tasks.halfcheetah as halfcheetah
from tasks import TASKS, generate_dataset, get_task, make_env, read_dataset
from tasks.evaluation import evaluate_policy, make_policy
from tasks.halfcheetah.env import HalfCheetahEnv
from tasks.halfcheetah.generate import replay_dataset, rollout_dataset
from tasks.halfcheetah.policies import SnapshotError, load_snapshot, save_snapshot
from tasks.halfcheetah.sac import SACConfig, run_training
from tasks.halfcheetah.sac_learner import SAC, Actor

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("halfcheetah-medium-v2", "halfcheetah-medium-replay-v2", "halfcheetah-medium-expert-v2")
# a small, fast SAC for the tests (the real one: SACConfig() defaults)
TINY = dict(hidden=32, batch_size=32, warmup_steps=900, eval_every=1000, eval_episodes=1,
            checkpoint_every=1000, progress=False)


def random_actor_snapshot(path: Path, seed: int, hidden: int = 32, **meta) -> Path:
    torch.manual_seed(seed)
    actor = Actor(17, 6, hidden)
    return save_snapshot(path, actor.state_dict(), 17, 6, hidden,
                         dict({"policy": path.stem, "env_steps": 1500, "sac_config": {}}, **meta))


@pytest.fixture
def fake_assets(tmp_path, monkeypatch):
    """Random-weight medium and expert snapshots in a temporary assets folder."""
    folder = tmp_path / "assets"
    random_actor_snapshot(folder / "medium.pt", 1)
    random_actor_snapshot(folder / "expert.pt", 2)
    monkeypatch.setattr(halfcheetah, "ASSETS_DIR", folder)
    return folder


# --- env -----------------------------------------------------------------------------------------
def test_env_facts():
    for name in NAMES:
        spec = get_task(name)
        assert (spec.domain, spec.obs_dim, spec.act_dim, spec.max_episode_steps) == ("halfcheetah", 17, 6, 1000)
        assert (spec.ref_min_score, spec.ref_max_score) == (-280.178953, 12135.0)
        assert spec.normalized_score(-280.178953) == 0.0 and spec.normalized_score(12135.0) == 100.0
        assert abs(spec.normalized_score(4770.0) - 40.68) < 0.01
    assert get_task(NAMES[0]).dataset_file == "halfcheetah_medium-v2.hdf5"
    assert get_task(NAMES[1]).dataset_file == "halfcheetah_medium_replay-v2.hdf5"
    assert get_task(NAMES[2]).dataset_url.endswith("/gym_mujoco_v2/halfcheetah_medium_expert-v2.hdf5")
    env = make_env(NAMES[0])
    assert env.observation_space.shape == (17,) and env.action_space.shape == (6,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (17,) and obs.dtype == np.float64
    action = np.full(6, 0.5, np.float32)
    for t in range(1000):
        x_before = env.unwrapped.data.qpos[0]
        obs, reward, terminated, truncated, info = env.step(action)
        assert not terminated and truncated == (t == 999)
    assert reward == pytest.approx((info["x_position"] - x_before) / 0.05 - 0.1 * 6 * 0.25)
    assert np.array_equal(obs[:8], env.unwrapped.data.qpos[1:]) and np.array_equal(obs[8:], env.unwrapped.data.qvel)


def test_env_matches_gymnasium_halfcheetah_v5():
    """Step for step equal to gymnasium's class (needs imageio, which gymnasium's mujoco package imports)."""
    pytest.importorskip("imageio")
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv as GymnasiumHalfCheetah

    import mujoco

    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: None)  # its settotalmass warning, not into MUJOCO_LOG.TXT
    try:
        ours, theirs = HalfCheetahEnv(), GymnasiumHalfCheetah()
    finally:
        mujoco.set_mju_user_warning(previous)
    rng = np.random.default_rng(0)
    a, b = ours.reset(seed=5)[0], theirs.reset(seed=5)[0]
    assert np.array_equal(a, b)
    for _ in range(200):
        action = rng.uniform(-1.2, 1.2, 6).astype(np.float32)
        a, b = ours.step(action), theirs.step(action)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


# --- SAC -----------------------------------------------------------------------------------------
def _batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 17, generator=g), torch.rand(n, 6, generator=g) * 2 - 1, torch.randn(n, generator=g),
            torch.randn(n, 17, generator=g), torch.zeros(n))


def test_sac_update_fits_a_tiny_batch_and_tunes_alpha():
    torch.manual_seed(0)
    agent = SAC(SACConfig(hidden=32, lr=1e-3), 17, 6, torch.device("cpu"))
    batch = _batch()
    first = agent.update(*batch)
    entropy, alpha0 = float(first["entropy"]), float(first["alpha"])
    assert alpha0 == pytest.approx(1.0)
    # entropy above the -6 target -> alpha goes down (and would go up below it)
    assert entropy > agent.target_entropy and float(agent.log_alpha.detach().exp()) < alpha0
    losses = [float(agent.update(*batch)["critic_loss"]) for _ in range(150)]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    # targets trail the critics by tau
    p, t = next(agent.critic.parameters()), next(agent.critic_target.parameters())
    assert not torch.equal(p, t) and (p - t).abs().max() < 1.0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny SAC run straight to 2000 env steps (checkpoints at 1000 and 2000)."""
    torch.set_num_threads(1)
    return run_training(SACConfig(total_steps=2000, root=str(tmp_path_factory.mktemp("sac")), **TINY))


def test_sac_resume_continues_bit_for_bit(tiny_run, tmp_path):
    straight = tiny_run
    run_training(SACConfig(total_steps=1000, root=str(tmp_path / "b"), **TINY))
    resumed = run_training(SACConfig(total_steps=2000, root=str(tmp_path / "b"), **TINY))
    assert resumed["resumed"] and straight["env_steps"] == resumed["env_steps"] == 2000
    ckpts = [torch.load(Path(r["run_dir"]) / "checkpoint.pt", weights_only=True) for r in (straight, resumed)]
    for part in ("actor", "critic", "critic_target"):
        for k, v in ckpts[0]["agent"][part].items():
            assert torch.equal(v, ckpts[1]["agent"][part][k]), (part, k)
    for k, v in ckpts[0]["buffer"]["data"].items():
        assert torch.equal(v, ckpts[1]["buffer"]["data"][k]), k
    assert torch.equal(ckpts[0]["rng"]["torch"], ckpts[1]["rng"]["torch"])
    rows = [(Path(r["run_dir"]) / "metrics.csv").read_text().splitlines() for r in (straight, resumed)]
    assert len(rows[0]) == len(rows[1]) == 3 and "updates_per_s" in rows[0][0]
    assert [r.split(",")[:6] for r in rows[0]] == [r.split(",")[:6] for r in rows[1]]  # same returns
    # a resume with other training settings is refused with a clear error
    with pytest.raises(Exception, match="other settings: lr"):
        run_training(SACConfig(total_steps=3000, root=str(tmp_path / "b"), **dict(TINY, lr=1e-3)))
    best = json.loads((Path(straight["run_dir"]) / "best.json").read_text())
    assert best["env_steps"] in (1000, 2000) and best["sac_config"]["hidden"] == 32


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [v.detach().clone() for v in module.state_dict().values()]


def test_warm_start_continues_from_an_actor_snapshot(tiny_run, tmp_path):
    """A new machine continues from a committed actor: its weights and step count, the recorded
    alpha; collection, then critics alone (actor and alpha held), then SAC; resumable bit for bit."""
    from tasks.halfcheetah.sac import Trainer

    snap = Path(tiny_run["run_dir"]) / "best.pt"
    meta = json.loads(snap.with_suffix(".json").read_text())
    assert meta["alpha"] > 0 and meta["warm_start"] is None  # recorded with every snapshot
    start = meta["env_steps"]
    warm = dict(TINY, warm_start=str(snap), warm_collect_steps=1000, warm_critic_steps=1000)
    trainer = Trainer(SACConfig(**warm))
    trainer.warm_start()
    blob = torch.load(snap, weights_only=True)
    assert trainer.step == start and (trainer.learn_from, trainer.actor_from) == (start + 1000, start + 2000)
    for k, v in trainer.agent.actor.state_dict().items():
        assert torch.equal(v, blob["state_dict"][k]), k
    assert float(trainer.agent.log_alpha.detach().exp()) == pytest.approx(meta["alpha"], rel=1e-6)
    actor0, critic0 = _params(trainer.agent.actor), _params(trainer.agent.critic)
    trainer.train(total_steps=start + 1999)  # 1000 steps of collection, then 1000 updates of the critics alone
    assert trainer.buffer.size == 1999
    uniform = trainer.buffer.data["action_log_probs"][:1999] == -6 * np.log(2.0)  # the random half
    assert 0.4 < float(uniform.float().mean()) < 0.6
    assert all(torch.equal(a, b) for a, b in zip(actor0, _params(trainer.agent.actor)))
    assert float(trainer.agent.log_alpha.detach().exp()) == pytest.approx(meta["alpha"], rel=1e-6)
    assert not any(torch.equal(a, b) for a, b in zip(critic0, _params(trainer.agent.critic)))
    trainer.train(total_steps=start + 2500)  # then SAC: the actor and alpha learn, with the actor's actions
    assert not bool((trainer.buffer.data["action_log_probs"][2000:2500] == -6 * np.log(2.0)).any())
    assert not any(torch.equal(a, b) for a, b in zip(actor0, _params(trainer.agent.actor)))
    assert float(trainer.agent.log_alpha.detach().exp()) != pytest.approx(meta["alpha"], rel=1e-6)

    # through the CLI's run: straight vs interrupted at the phase boundary, equal to the bit
    straight = run_training(SACConfig(total_steps=start + 3000, root=str(tmp_path / "a"), **warm))
    run_training(SACConfig(total_steps=start + 2000, root=str(tmp_path / "b"), **warm))
    resumed = run_training(SACConfig(total_steps=start + 3000, root=str(tmp_path / "b"), **warm))
    assert resumed["resumed"] and straight["env_steps"] == resumed["env_steps"] == start + 3000
    ckpts = [torch.load(Path(r["run_dir"]) / "checkpoint.pt", weights_only=True) for r in (straight, resumed)]
    assert ckpts[0]["warm"]["sha256"] == meta["sha256"] and ckpts[1]["warm"] == ckpts[0]["warm"]
    for part in ("actor", "critic", "critic_target"):
        for k, v in ckpts[0]["agent"][part].items():
            assert torch.equal(v, ckpts[1]["agent"][part][k]), (part, k)
    rows = (Path(straight["run_dir"]) / "metrics.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == [start + 1000, start + 2000, start + 3000]
    best = json.loads((Path(straight["run_dir"]) / "best.json").read_text())
    assert best["warm_start"]["env_steps"] == start and best["gradient_updates"] >= meta["gradient_updates"]
    assert straight["medium"]["step"] is None  # a warm start takes no medium snapshot
    ramped = Trainer(SACConfig(**dict(warm, warm_actor_ramp_steps=1000)))
    ramped.warm_start()
    ramped.train(total_steps=start + 2500)  # 501 actor steps into a 1000-step ramp
    assert ramped.agent.actor_opt.param_groups[0]["lr"] == pytest.approx(TINY.get("lr", 3e-4) * 501 / 1000)
    with pytest.raises(ValueError, match="--hidden 32"):
        Trainer(SACConfig(**dict(warm, hidden=64))).warm_start()


def test_sac_cli_help():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "tasks.halfcheetah.sac", "--help"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0 and "--total-steps" in out.stdout and "--medium-return" in out.stdout


# --- snapshots -------------------------------------------------------------------------------------
def test_snapshot_round_trip_weights_only(tmp_path):
    torch.manual_seed(3)
    actor = Actor(17, 6, 32)
    path = save_snapshot(tmp_path / "p.pt", actor.state_dict(), 17, 6, 32, {"eval_return": 1.5})
    blob = torch.load(path, weights_only=True)  # plain tensors and numbers only
    assert blob["format"] == 1 and set(blob["state_dict"]) == set(actor.state_dict())
    loaded, meta = load_snapshot(path, 17, 6)
    assert meta["eval_return"] == 1.5 and len(meta["sha256"]) == 64
    obs = torch.randn(5, 17)
    with torch.no_grad():
        mean, log_std = actor(obs)
    for i in range(5):
        m, s = loaded.dist(obs[i].numpy())
        assert np.allclose(m, mean[i].numpy(), atol=1e-5) and np.allclose(s, log_std[i].numpy(), atol=1e-5)
    with pytest.raises(SnapshotError, match="act_dim=6"):
        load_snapshot(path, 17, 8)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(SnapshotError, match="sha256"):
        load_snapshot(path)


def test_committed_snapshots_load_and_describe_themselves():
    for name in ("medium", "expert"):
        path = ROOT / "tasks" / "halfcheetah" / "assets" / f"{name}.pt"
        if not path.exists():
            pytest.skip(f"no committed {name} snapshot yet")
        actor, meta = load_snapshot(path, 17, 6)
        assert path.stat().st_size < 1_000_000
        for key in ("eval_return", "normalized_score", "env_steps", "sac_config", "code_version", "sha256"):
            assert key in meta, key
        action, logp = actor.act(np.zeros(17), np.random.default_rng(0))
        assert action.shape == (6,) and np.all(np.abs(action) <= 1) and np.isfinite(logp)


def test_committed_expert_and_medium_play_at_their_levels():
    """The published claims hold when the snapshots act: one tanh(mean) episode each (D4RL: medium
    about 40-45 normalised, expert about 88 and up)."""
    sidecars = {n: ROOT / "tasks" / "halfcheetah" / "assets" / f"{n}.json" for n in ("medium", "expert")}
    if not all(path.exists() for path in sidecars.values()):
        pytest.skip("no committed snapshots yet")
    expert_meta = json.loads(sidecars["expert"].read_text())
    assert expert_meta["expert_level"] is True and expert_meta["normalized_score"] >= 88.0
    spec = get_task("halfcheetah-medium-v2")
    score = {n: float(spec.normalized_score(evaluate_policy(spec.name, make_policy(spec.name, f"{n}-mean", seed=3),
                                                             episodes=1, seed=3, num_envs=1)[0]))
             for n in ("medium", "expert")}
    assert 35.0 <= score["medium"] <= 50.0, score
    assert score["expert"] >= 88.0, score


# --- datasets ---------------------------------------------------------------------------------------
def _check_layout(data, n):
    assert set(data) == set(halfcheetah.DATASET_KEYS)
    for key, shape in (("observations", (n, 17)), ("next_observations", (n, 17)), ("actions", (n, 6)),
                       ("rewards", (n,)), ("infos/action_log_probs", (n,)), ("infos/qpos", (n, 9)),
                       ("infos/qvel", (n, 9))):
        assert data[key].shape == shape and data[key].dtype == np.float32, key
    assert data["terminals"].dtype == bool and data["timeouts"].dtype == bool and not data["terminals"].any()
    assert np.all(np.abs(data["actions"]) <= 1)
    np.testing.assert_array_equal(data["infos/qpos"][:, 1:], data["observations"][:, :8])
    np.testing.assert_array_equal(data["infos/qvel"], data["observations"][:, 8:])
    inside = ~data["timeouts"][:-1]  # next_observations[t] == observations[t + 1] within an episode
    np.testing.assert_array_equal(data["next_observations"][:-1][inside], data["observations"][1:][inside])
    x = data["infos/qpos"][:, 0].astype(np.float64)
    speed = (x[1:] - x[:-1]) / 0.05
    ctrl = 0.1 * np.square(data["actions"][:-1].astype(np.float64)).sum(1)
    np.testing.assert_allclose(data["rewards"][:-1][inside], (speed - ctrl)[inside], atol=2e-2)


def test_generate_medium_and_medium_expert_layout_and_determinism(fake_assets, tmp_path):
    path = generate_dataset("halfcheetah-medium-v2", out=tmp_path / "m.hdf5", steps=2500, seed=4, show_progress=False)
    data = read_dataset(path, get_task("halfcheetah-medium-v2"))
    _check_layout(data, 2500)
    assert np.flatnonzero(data["timeouts"]).tolist() == [999, 1999]  # the partial last episode has none
    with h5py.File(path) as f:
        assert f.attrs["seed"] == 4 and f.attrs["steps"] == 2500
    me = read_dataset(generate_dataset("halfcheetah-medium-expert-v2", out=tmp_path / "me.hdf5", steps=5000,
                                       seed=4, show_progress=False))
    _check_layout(me, 5000)
    data_ended = dict(data, timeouts=data["timeouts"].copy())
    data_ended["timeouts"][-1] = True  # the medium part's partial last episode ends with the part
    for key in data:  # the medium half is halfcheetah-medium-v2 of the same seed
        np.testing.assert_array_equal(me[key][:2500], data_ended[key], err_msg=key)
    assert np.flatnonzero(me["timeouts"]).tolist() == [999, 1999, 2499, 3499, 4499]
    actor, _ = load_snapshot(fake_assets / "medium.pt")
    again = rollout_dataset(actor, 2500, 4, 10, show_progress=False)
    other = rollout_dataset(actor, 2500, 5, 10, show_progress=False)
    for key in data:
        np.testing.assert_array_equal(again[key], data[key], err_msg=key)
    assert not np.array_equal(other["actions"], data["actions"])


def test_a_dataset_made_from_a_replaced_snapshot_is_flagged_stale(fake_assets, tmp_path, capsys):
    """Generated files record the sha256 of the snapshots they were made from; after a new expert
    is published, loading the old medium-expert file warns (the medium file, made without it, not)."""
    import warnings

    from tasks.__main__ import main
    from tasks.datasets import StaleDatasetWarning, load_dataset

    data_dir = tmp_path / "data"
    sha = {n: json.loads((fake_assets / f"{n}.json").read_text())["sha256"] for n in ("medium", "expert")}
    for name in ("halfcheetah-medium-v2", "halfcheetah-medium-expert-v2"):
        generate_dataset(name, data_dir=data_dir, steps=1200, seed=0, show_progress=False)
    with h5py.File(data_dir / "halfcheetah_medium_expert-v2.hdf5") as f:
        assert (f.attrs["source_medium_sha256"], f.attrs["source_expert_sha256"]) == (sha["medium"], sha["expert"])
    with h5py.File(data_dir / "halfcheetah_medium-v2.hdf5") as f:
        assert f.attrs["source_medium_sha256"] == sha["medium"] and "source_expert_sha256" not in f.attrs
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleDatasetWarning)  # nothing stale yet
        fresh = load_dataset("halfcheetah-medium-expert-v2", data_dir, show_progress=False)
    random_actor_snapshot(fake_assets / "expert.pt", 7)  # a new expert is published
    new_sha = json.loads((fake_assets / "expert.json").read_text())["sha256"]
    with pytest.warns(StaleDatasetWarning, match=f"expert_sha256: {sha['expert'][:12]} in the file, "
                                                 f"{new_sha[:12]} now") as caught:
        stale = load_dataset("halfcheetah-medium-expert-v2", data_dir, show_progress=False)
    assert "--overwrite" in str(caught[0].message)
    np.testing.assert_array_equal(stale["actions"], fresh["actions"])  # a warning, the file is still read
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleDatasetWarning)
        load_dataset("halfcheetah-medium-v2", data_dir, show_progress=False)
    capsys.readouterr()
    assert main(["info", "halfcheetah-medium-expert-v2", "--data-dir", str(data_dir)]) == 0
    assert "STALE: expert_sha256" in capsys.readouterr().out
    generate_dataset("halfcheetah-medium-expert-v2", data_dir=data_dir, steps=1200, seed=0, overwrite=True,
                     show_progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleDatasetWarning)  # regenerated: current again
        renewed = load_dataset("halfcheetah-medium-expert-v2", data_dir, show_progress=False)
    assert not np.array_equal(renewed["actions"][600:], fresh["actions"][600:])  # the expert half changed
    np.testing.assert_array_equal(renewed["actions"][:600], fresh["actions"][:600])  # the medium half did not


def test_dataset_stats_script_reports_medium_expert_per_part(fake_assets, tmp_path):
    sys.path.insert(0, str(ROOT))
    from benchmarks import halfcheetah_dataset_stats

    path = generate_dataset("halfcheetah-medium-expert-v2", data_dir=tmp_path, steps=3000, seed=1,
                            show_progress=False)
    out = tmp_path / "stats.json"
    assert halfcheetah_dataset_stats.main([str(path), "--out", str(out)]) == 0
    stats = json.loads(out.read_text())["datasets"][0]
    rewards = read_dataset(path)["rewards"].astype(np.float64)
    # episodes by hand: medium rows 0-999, 1000-1499 (ends with its part), expert rows 1500-2499, 2500-2999
    by_hand = {"medium_part": [rewards[:1000].sum(), rewards[1000:1500].sum()],
               "expert_part": [rewards[1500:2500].sum(), rewards[2500:].sum()]}
    by_hand["all"] = by_hand["medium_part"] + by_hand["expert_part"]
    for part, returns in by_hand.items():
        assert stats[part]["episodes"] == len(returns)
        np.testing.assert_allclose([stats[part]["return_mean"], stats[part]["return_std"], stats[part]["return_max"]],
                                   [np.mean(returns), np.std(returns), np.max(returns)], rtol=1e-9)
    assert (stats["medium_part"]["steps"], stats["expert_part"]["steps"], stats["all"]["steps"]) == (1500, 1500, 3000)
    np.testing.assert_allclose(stats["all"]["normalized_mean"],
                               get_task("halfcheetah-medium-expert-v2").normalized_score(np.mean(by_hand["all"])))


def test_medium_replay_is_the_seeded_runs_buffer(tiny_run, tmp_path):
    cfg = SACConfig(**TINY)
    rerun = replay_dataset(1200, seed=0, cfg=cfg, root=tmp_path / "none")
    _check_layout(rerun, 1200)
    assert np.flatnonzero(rerun["timeouts"]).tolist() == [999]
    # the same transitions as the run's own checkpoint holds (its first 1200 of 2000)
    prefix = replay_dataset(1200, seed=0, cfg=cfg, root=Path(tiny_run["run_dir"]).parents[2])
    for key in rerun:
        np.testing.assert_array_equal(prefix[key], rerun[key], err_msg=key)
    assert not np.array_equal(replay_dataset(1000, seed=1, cfg=cfg, root=tmp_path / "none")["actions"],
                              rerun["actions"][:1000])
    # through the registry (the default SAC settings: 1000 steps are all warm-up)
    path = generate_dataset("halfcheetah-medium-replay-v2", out=tmp_path / "mr.hdf5", steps=1000, seed=2,
                            show_progress=False)
    _check_layout(read_dataset(path), 1000)


def test_evaluate_snapshot_policies(fake_assets):
    spec = get_task("halfcheetah-medium-v2")
    assert {"medium", "expert", "medium-mean", "expert-mean"} <= set(spec.scripted_policies)
    returns = {n: evaluate_policy(spec.name, make_policy(spec.name, n, seed=1), episodes=2, seed=1, num_envs=n_envs)
               for n, n_envs in (("medium", 2), ("medium-mean", 1))}
    alone = evaluate_policy(spec.name, make_policy(spec.name, "medium", seed=1), episodes=2, seed=1, num_envs=1)
    np.testing.assert_array_equal(alone, returns["medium"])  # row-by-row acting: batch size does not matter
    assert returns["medium"].shape == (2,) and np.all(np.isfinite(returns["medium-mean"]))


def test_evaluate_cli_refuses_a_stored_score_of_other_weights(fake_assets, tmp_path, capsys):
    """A republished snapshot is scored anew: the stored result of the old weights is not reported."""
    from tasks.__main__ import main

    args = ["evaluate", "halfcheetah-medium-v2", "--policy", "expert-mean", "--episodes", "1",
            "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    assert main(args) == 0
    final_path = tmp_path / "runs" / "halfcheetah-medium-v2" / "eval-expert-mean" / "seed0" / "final.json"
    first = json.loads(final_path.read_text())
    assert first["policy_source"] == {"file": "expert.pt",
                                      "sha256": json.loads((fake_assets / "expert.json").read_text())["sha256"]}
    assert main(args) == 0  # same weights: the stored result is reported, not recomputed
    assert json.loads(final_path.read_text()) == first
    capsys.readouterr()
    random_actor_snapshot(fake_assets / "expert.pt", 7)  # a new expert is published
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds a result made with expert.pt sha256 " + first["policy_source"]["sha256"][:12] in err
    assert "--overwrite" in err and json.loads(final_path.read_text()) == first  # nothing overwritten
    assert main([*args, "--overwrite"]) == 0
    second = json.loads(final_path.read_text())
    assert second["policy_source"]["sha256"] != first["policy_source"]["sha256"]
    assert second["mean_return"] != first["mean_return"]


def test_missing_snapshot_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(halfcheetah, "ASSETS_DIR", tmp_path / "empty")
    with pytest.raises(SnapshotError, match="no actor snapshot"):
        make_policy("halfcheetah-medium-v2", "expert")
    assert all(name in TASKS for name in NAMES)


def test_publish_copies_snapshots_into_assets(tiny_run, tmp_path):
    from tasks.halfcheetah.publish import publish

    run = Path(tiny_run["run_dir"])
    lines = publish(run, tmp_path / "assets")
    assert any(line.startswith("expert <- ") for line in lines) and "not reached" in lines[0]
    actor, meta = load_snapshot(tmp_path / "assets" / "expert.pt", 17, 6)  # sha256 still valid
    assert meta["published_as"] == "expert" and meta["file"] == "expert.pt" and meta["expert_level"] is False
    assert "kept the committed one" in publish(run, tmp_path / "assets")[1]  # not better: kept


def test_changed_settings_reads_keys_a_checkpoint_predates_as_defaults():
    """A checkpoint written before the warm-start settings existed still resumes (and still serves
    medium-replay); a warm-started run's never passes for a run from scratch."""
    from dataclasses import asdict

    from tasks.halfcheetah.sac import changed_settings

    cfg = SACConfig(**TINY)
    saved = {k: v for k, v in asdict(cfg).items() if not k.startswith("warm_")}
    assert changed_settings(saved, cfg) == []
    assert changed_settings(dict(saved, warm_start="expert.pt", lr=1e-3), cfg) == ["lr", "warm_start"]
