"""The Decision Transformer worker (corl/dt.py): data, model, loss, batched evaluation, presets,
end-to-end training with every intent mode and bit-exact resume."""
from __future__ import annotations

import copy
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from common.checkpoint import load_checkpoint
from corl import dt
from corl.shared import config as worker_config
from corl.shared.evaluate import evaluate_run
from tasks import evaluate_policy

ENV = "maze2d-umaze-v1"
ROOT = Path(__file__).resolve().parents[1]
TINY = ["--embedding_dim", "16", "--num_layers", "1", "--batch_size", "16", "--seq_len", "5"]


def tiny_model(state_dim=3, action_dim=2, seq_len=4, episode_len=10, dropout=0.0, seed=0) -> dt.DecisionTransformer:
    torch.manual_seed(seed)
    return dt.DecisionTransformer(state_dim, action_dim, seq_len=seq_len, episode_len=episode_len, embedding_dim=8,
                                  num_layers=2, num_heads=2, attention_dropout=dropout, residual_dropout=dropout,
                                  embedding_dropout=dropout)


def toy_raw_dataset() -> dict[str, np.ndarray]:
    """Raw D4RL layout: a terminal-ended episode of 2 steps, a timeout-ended one of 5, an
    unfinished tail of 2 (dropped, as CORL drops it). Observation = row index + 1."""
    n = 9
    obs = (np.arange(n, dtype=np.float32) + 1)[:, None] * np.ones((1, 3), np.float32)
    return {"observations": obs, "actions": obs[:, :2] / 10,
            "rewards": np.array([1, 2, 0, 1, 0, 0, 3, 5, 5], np.float32),
            "terminals": np.array([0, 1, 0, 0, 0, 0, 0, 0, 0], bool),
            "timeouts": np.array([0, 0, 0, 0, 0, 0, 1, 0, 0], bool)}


# --- data ---------------------------------------------------------------------------------------
def test_returns_to_go_by_hand():
    np.testing.assert_allclose(dt.returns_to_go(np.array([1.0, 0.0, 2.0]), reward_scale=0.5), [1.5, 1.0, 1.0])
    np.testing.assert_allclose(dt.returns_to_go(np.array([3.0])), [3.0])
    trajs = dt.split_trajectories(toy_raw_dataset(), max_episode_steps=1000)
    assert [len(t["rewards"]) for t in trajs] == [2, 5]  # the unfinished tail is dropped
    buffer = dt.SequenceBuffer(trajs, np.zeros(3, np.float32), np.ones(3, np.float32), seq_len=4,
                               reward_scale=0.1, device="cpu")
    np.testing.assert_allclose(buffer.returns_to_go.numpy(), [0.3, 0.2, 0.4, 0.4, 0.3, 0.3, 0.3], rtol=1e-6)


def test_sampling_pads_and_masks_short_trajectories():
    trajs = dt.split_trajectories(toy_raw_dataset(), max_episode_steps=1000)  # rows 0-1 and 2-6
    mean, std = np.full(3, 1.0, np.float32), np.full(3, 2.0, np.float32)
    buffer = dt.SequenceBuffer(trajs, mean, std, seq_len=4, reward_scale=1.0, device="cpu", seed=0)
    states, actions, rtg, time_steps, mask = buffer.sample(512)
    assert states.shape == (512, 4, 3) and actions.shape == (512, 4, 2)
    assert rtg.shape == time_steps.shape == mask.shape == (512, 4) and time_steps.dtype == torch.long
    rtg_rows = np.array([3, 2, 4, 4, 3, 3, 3], np.float32)
    first_rows = set()
    for s, a, r, ts, m in zip(states, actions, rtg, time_steps, mask):
        first = int(round(s[0, 0].item() * 2 + 1)) - 1  # normalised (row + 1 - 1) / 2 -> row
        first_rows.add(first)
        start, end = (0, 2) if first < 2 else (2, 7)
        n_valid = min(4, end - first)
        assert m.tolist() == [1.0] * n_valid + [0.0] * (4 - n_valid)
        rows = np.arange(first, first + n_valid)
        np.testing.assert_allclose(s[:n_valid, 0].numpy(), rows / 2.0)  # ((row + 1) - 1) / 2
        np.testing.assert_allclose(a[:n_valid, 0].numpy(), (rows + 1) / 10, rtol=1e-6)
        np.testing.assert_allclose(r[:n_valid].numpy(), rtg_rows[rows])
        assert not s[n_valid:].any() and not a[n_valid:].any() and not r[n_valid:].any()  # zero padding
        assert ts.tolist() == list(range(first - start, first - start + 4))  # padding keeps counting
    assert first_rows == set(range(7))  # every row can start a sequence (uniform over rows)
    # uniform rows = CORL's length-weighted trajectory choice: the 2-step trajectory gets 2/7 of the starts
    starts = torch.round(buffer.sample(20_000)[0][:, 0, 0] * 2).long()
    assert (starts < 2).float().mean().item() == pytest.approx(2 / 7, abs=0.02)


def test_buffer_state_resumes_the_sampling():
    trajs = dt.split_trajectories(toy_raw_dataset(), max_episode_steps=1000)
    a = dt.SequenceBuffer(trajs, np.zeros(3, np.float32), np.ones(3, np.float32), 4, 1.0, "cpu", seed=3)
    b = dt.SequenceBuffer(trajs, np.zeros(3, np.float32), np.ones(3, np.float32), 4, 1.0, "cpu", seed=4)
    a.sample(5)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(a.sample(8), b.sample(8)))
    with pytest.raises(ValueError, match="another dataset"):
        b.load_state_dict({**a.state_dict(), "size": 3})


# --- model and loss -----------------------------------------------------------------------------
def random_batch(batch=3, k=4, state_dim=3, action_dim=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, k, state_dim, generator=g), torch.rand(batch, k, action_dim, generator=g) * 2 - 1,
            torch.randn(batch, k, generator=g), torch.randint(0, 10, (batch, k), generator=g))


def test_padding_changes_neither_loss_nor_valid_predictions():
    model = tiny_model().train()  # dropout 0: train mode is deterministic
    states, actions, rtg, times = random_batch()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float32)
    pred = model(states, actions, rtg, times, padding_mask=mask == 0)
    loss = dt.dt_loss(pred, actions, mask)
    pad = (mask == 0)
    g = torch.Generator().manual_seed(9)
    states2 = torch.where(pad[..., None], torch.randn(states.shape, generator=g) * 5, states)
    actions2 = torch.where(pad[..., None], torch.rand(actions.shape, generator=g), actions)
    rtg2 = torch.where(pad, rtg + 7.0, rtg)
    times2 = torch.where(pad, (times + 3) % 10, times)
    pred2 = model(states2, actions2, rtg2, times2, padding_mask=mask == 0)
    valid = mask.bool()
    assert torch.allclose(pred[valid], pred2[valid], atol=1e-6)
    assert not torch.allclose(pred[~valid], pred2[~valid])  # the padded positions did see the change
    assert dt.dt_loss(pred2, actions2, mask).item() == pytest.approx(loss.item(), rel=1e-6)


def test_predictions_are_causal():
    model = tiny_model().eval()
    states, actions, rtg, times = random_batch(batch=1)
    pred = model(states, actions, rtg, times)
    j = 1
    later = torch.arange(4) > j
    actions2 = actions.clone()
    actions2[:, j:] += 0.5  # a_j itself: the prediction of a_j is read from s_j, before a_j
    states2 = torch.where(later[None, :, None], states + 1.0, states)
    rtg2 = torch.where(later[None], rtg - 2.0, rtg)
    pred2 = model(states2, actions2, rtg2, times)
    assert torch.allclose(pred[:, : j + 1], pred2[:, : j + 1], atol=1e-6)
    assert not torch.allclose(pred[:, j + 1], pred2[:, j + 1])
    # changing only a_j changes the next prediction but not the current one
    pred3 = model(states, actions2, rtg, times)
    assert torch.allclose(pred[:, j], pred3[:, j], atol=1e-6) and not torch.allclose(pred[:, j + 1], pred3[:, j + 1])


def test_masked_loss_by_hand():
    predicted = torch.tensor([[[1.0, 0.0], [3.0, 1.0]]])  # (1, 2, 2)
    actions = torch.tensor([[[0.0, 2.0], [1.0, 1.0]]])
    # entries: (1, 4) valid, (4, 0) padded -> (1 + 4 + 0 + 0) / 4
    assert dt.dt_loss(predicted, actions, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(1.25)
    assert dt.dt_loss(predicted, actions, torch.tensor([[1.0, 1.0]])).item() == pytest.approx(2.25)


def test_model_init_and_output_range():
    model = tiny_model(dropout=0.1)
    assert model.action_head[0].bias.abs().sum() == 0 and model.emb_norm.weight.eq(1).all()
    assert model.state_emb.weight.std().item() == pytest.approx(0.02, rel=0.5)
    out = model(*random_batch())
    assert out.shape == (3, 4, 2) and out.abs().max() < 1.0


def test_timestep_embedding_follows_the_time_limit():
    assert dt.timestep_episode_len(300, 201) == 300  # maze2d-umaze: the task's limit, not CORL's fixed 1000
    assert dt.timestep_episode_len(300, 301) == 300  # D4RL maze2d segments run up to limit + 1 steps
    assert dt.timestep_episode_len(700, 1000) == 999  # antmaze-umaze: 1000-step dataset episodes, limit 700
    assert dt.timestep_episode_len(2000, 1000) == 2000  # antmaze-ultra's limit
    assert tiny_model(seq_len=4, episode_len=300).timestep_emb.num_embeddings == 304


# --- evaluation ---------------------------------------------------------------------------------
def make_dt(model: dt.DecisionTransformer, targets=(10.0, 4.0), reward_scale=0.5) -> dt.DT:
    return dt.DT(model, learning_rate=1e-3, betas=(0.9, 0.999), weight_decay=1e-4, warmup_steps=10, clip_grad=0.25,
                 reward_scale=reward_scale, target_returns=targets)


def test_eval_policy_keeps_histories_and_lowers_the_return_to_go():
    """Two envs, seq_len 3, five steps: the rolling window and R_t match a CORL-style rollout that
    keeps the whole history and feeds its last seq_len steps."""
    k, steps = 3, 5
    model = tiny_model(seq_len=k, episode_len=20, dropout=0.1)
    algo = make_dt(model)
    algo.set_eval_target(4.0)
    algo.reset(np.arange(2))
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(steps, 2, 3, generator=g)
    rewards = np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 0.0], [1.0, 3.0], [0.0, 1.0]])
    got = []
    for t in range(steps):
        got.append(algo.act(obs[t]))
        algo.observe(rewards[t])
    returns = 4.0 * 0.5 - 0.5 * np.vstack([np.zeros((1, 2)), np.cumsum(rewards, axis=0)])  # (steps + 1, 2)
    np.testing.assert_allclose(algo.current_return.numpy(), returns[-1], rtol=1e-6)
    assert algo.t.tolist() == [5, 5]
    assert algo.time_steps.tolist() == [[2, 3, 4], [2, 3, 4]]
    np.testing.assert_allclose(algo.returns.numpy(), returns[2:5].T, rtol=1e-6)
    assert torch.equal(algo.states, obs[2:5].transpose(0, 1))
    assert torch.equal(algo.actions, torch.stack(got[2:5], dim=1))
    # reference: per env, full history, last k steps, dummy zero action at the newest step
    model.eval()
    with torch.no_grad():
        for e in range(2):
            hist_s, hist_a = obs[:, e], torch.zeros(steps, 2)
            for t in range(steps):
                lo = max(0, t + 1 - k)
                pred = model(hist_s[None, lo:t + 1], hist_a[None, lo:t + 1],
                             torch.as_tensor(returns[lo:t + 1, e], dtype=torch.float32)[None],
                             torch.arange(lo, t + 1)[None])[0, -1]
                assert torch.allclose(pred, got[t][e], atol=1e-5), (e, t)
                hist_a[t] = pred
    algo.reset(np.arange(3))  # a new round: fresh histories at the target
    assert algo.t.tolist() == [0, 0, 0] and algo.current_return.tolist() == [2.0, 2.0, 2.0]


def test_evaluator_reports_rewards_to_observe():
    class Spy:
        def __init__(self):
            self.seen = []

        def __call__(self, obs):
            return np.clip(10 * (np.array([1.0, 1.0]) - obs[..., :2]) - obs[..., 2:], -1, 1)

        def observe(self, rewards):
            self.seen.append(np.array(rewards))

    spy = Spy()
    returns = evaluate_policy(ENV, spy, episodes=2, seed=5, num_envs=2)
    assert len(spy.seen) == 300 and spy.seen[0].shape == (2,)
    np.testing.assert_allclose(np.sum(spy.seen, axis=0), returns)  # maze2d: both run the full 300 steps
    assert returns.max() > 0


def test_update_warmup_and_state_dict_roundtrip():
    trajs = dt.split_trajectories(toy_raw_dataset(), max_episode_steps=1000)
    buffer = dt.SequenceBuffer(trajs, np.zeros(3, np.float32), np.ones(3, np.float32), 4, 1.0, "cpu", seed=0)
    algo = make_dt(tiny_model(dropout=0.1))
    lrs = [algo.update(buffer.sample(8))["learning_rate"].item() for _ in range(12)]
    np.testing.assert_allclose(lrs, [1e-3 * min((i + 1) / 10, 1) for i in range(12)], rtol=1e-6)
    other = make_dt(tiny_model(dropout=0.1, seed=5))
    other.load_state_dict(copy.deepcopy(algo.state_dict()))  # (optimizer state would alias)
    batch = buffer.sample(8)
    torch.manual_seed(0)
    a = algo.update(batch)
    torch.manual_seed(0)
    b = other.update(batch)
    assert a["train_loss"].item() == b["train_loss"].item() and a["learning_rate"].item() == pytest.approx(1e-3)
    assert all(torch.equal(p, q) for p, q in zip(algo.model.parameters(), other.model.parameters()))


# --- presets ------------------------------------------------------------------------------------
def test_presets_load_and_set_corl_values():
    fields = {f.name for f in dataclasses.fields(dt.DTConfig)}
    expected = {"maze2d": (4096, 8e-4, 1.0, [280.0, 140.0]), "antmaze": (64, 1e-4, 1.0, [1.0, 0.5]),
                "halfcheetah": (4096, 8e-4, 0.001, [12000.0, 6000.0])}
    for domain, (batch, lr, scale, targets) in expected.items():
        data = yaml.safe_load((ROOT / "corl" / "presets" / "dt" / f"{domain}.yaml").read_text())
        per_dataset = data.pop("datasets", {})
        assert set(data) <= fields and all(set(v) <= fields for v in per_dataset.values()), domain
        assert (data["batch_size"], data["learning_rate"], data["reward_scale"], data["target_returns"]) == \
            (batch, lr, scale, targets)
    antmaze = yaml.safe_load((ROOT / "corl" / "presets" / "dt" / "antmaze.yaml").read_text())["datasets"]
    assert antmaze["antmaze-large-diverse-v2"]["target_returns"] == [1.0, 0.5, 0.25, 0.125, 0.06, 0.03]
    assert "antmaze-large-play-v2" not in antmaze
    cfg = worker_config.parse_worker_config(dt.DTConfig, "dt", ["--env", ENV, "--profile", "paper"])
    assert (cfg.batch_size, cfg.learning_rate, cfg.reward_scale) == (4096, 8e-4, 1.0)
    assert cfg.target_returns == (280.0, 140.0)
    assert (cfg.embedding_dim, cfg.num_layers, cfg.num_heads, cfg.seq_len, cfg.warmup_steps) == (128, 3, 1, 20, 10_000)
    assert (cfg.betas, cfg.weight_decay, cfg.clip_grad, cfg.algo) == ((0.9, 0.999), 1e-4, 0.25, "dt")
    cfg = worker_config.parse_worker_config(dt.DTConfig, "dt", ["--env", ENV, "--target_returns", "[100]"])
    assert cfg.target_returns == (100.0,)


def test_cpu_profiles_shrink_dt_batch_and_warmup_but_flags_win():
    quick = worker_config.parse_worker_config(dt.DTConfig, "dt", ["--env", ENV, "--profile", "quick"])
    assert (quick.batch_size, quick.warmup_steps, quick.learning_rate) == (64, 500, 8e-4)  # lr: the preset's
    auto_on_cpu = worker_config.parse_worker_config(dt.DTConfig, "dt", ["--env", ENV, "--device", "cpu"])
    assert (auto_on_cpu.batch_size, auto_on_cpu.warmup_steps) == (64, 500)
    smoke = worker_config.parse_worker_config(dt.DTConfig, "dt", ["--env", ENV, "--profile", "smoke"])
    assert (smoke.batch_size, smoke.warmup_steps) == (16, 20)
    flags = worker_config.parse_worker_config(
        dt.DTConfig, "dt", ["--env", ENV, "--profile", "quick", "--batch_size", "4096", "--warmup_steps", "7"])
    assert (flags.batch_size, flags.warmup_steps) == (4096, 7)
    with pytest.raises(ValueError, match="unknown profile 'fast'"):
        worker_config.parse_worker_config(dt.DTConfig, "dt", ["--env", ENV, "--profile", "fast"])
    # the other workers keep their presets at every profile
    from corl import td3_bc
    paper = worker_config.parse_worker_config(td3_bc.TD3BCConfig, "td3_bc", ["--env", ENV, "--profile", "paper"])
    assert worker_config.parse_worker_config(td3_bc.TD3BCConfig, "td3_bc", ["--env", ENV, "--profile", "quick"]) \
        == dataclasses.replace(paper, profile="quick")


# --- end to end ---------------------------------------------------------------------------------
def run_dt(data_dir, runs_dir, intent, *extra):
    args = ["--env", ENV, "--profile", "smoke", "--intent", intent, "--runs_dir", str(runs_dir),
            "--data_dir", str(data_dir), "--progress", "false", "--log_every", "50", "--checkpoint_every", "100",
            "--eval_num_envs", "2", "--warmup_steps", "10", "--learning_rate", "1e-3", *TINY, *extra]
    return dt.train(worker_config.parse_worker_config(dt.DTConfig, "dt", args))


def read_metrics(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("intent", ["none", "manager"])
def test_dt_trains_with_intents(data_dir, tmp_path, smoke_manager, intent):
    result = run_dt(data_dir, tmp_path, intent, *(["--manager", str(smoke_manager)] if intent == "manager" else []))
    run_path = tmp_path / ENV / "dt" / intent / "seed0"
    assert json.loads((run_path / "final.json").read_text()) == result
    assert result["steps"] == 200 and result["eval_episodes"] == 2 and np.isfinite(result["normalized_score"])
    per_target = result["normalized_score_per_target"]
    assert list(per_target) == ["280", "140"] and all(np.isfinite(v) for v in per_target.values())
    assert per_target["280"] == result["normalized_score"]
    rows = read_metrics(run_path / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [50, 100, 150, 200]
    assert list(rows[0])[:6] == ["step", "train_loss", "learning_rate", "eval_normalized_score",
                                 "eval_normalized_score_280", "eval_normalized_score_140"]
    evaluated = [r for r in rows if r["eval_normalized_score"]]
    assert len(evaluated) == 2 and all(r["eval_normalized_score"] == r["eval_normalized_score_280"] for r in evaluated)
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < losses[0]  # cloning the dataset's actions makes progress
    model = load_checkpoint(run_path / "checkpoint.pt")["algo"]["model"]
    assert model["timestep_emb.weight"].shape == (300 + 5, 16)  # umaze's limit + seq_len
    assert model["state_emb.weight"].shape == (16, 14 if intent == "manager" else 4)  # 4 state + 10 intent dims
    # `python -m corl evaluate` replays the final evaluation at every target from the checkpoint alone
    replay = evaluate_run(run_path, device="cpu")
    assert replay["replays_final_json"] and replay["normalized_score_per_target"] == per_target


def test_interrupted_run_equals_uninterrupted(data_dir, tmp_path):
    whole = run_dt(data_dir, tmp_path / "a", "random")
    assert run_dt(data_dir, tmp_path / "b", "random", "--chunk_steps", "100") is None
    resumed = run_dt(data_dir, tmp_path / "b", "random", "--chunk_steps", "100")
    assert resumed["normalized_score_per_target"] == whole["normalized_score_per_target"]
    metrics = [read_metrics(tmp_path / x / ENV / "dt" / "random" / "seed0" / "metrics.csv") for x in "ab"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "steps_per_s"} for r in rows]  # noqa: E731
    assert strip(metrics[0]) == strip(metrics[1])
    states = [load_checkpoint(tmp_path / x / ENV / "dt" / "random" / "seed0" / "checkpoint.pt")
              for x in "ab"]
    for name, tensor in states[0]["algo"]["model"].items():
        assert torch.equal(tensor, states[1]["algo"]["model"][name]), name
