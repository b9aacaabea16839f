"""Sub-trajectory sampling: episode boundaries, k-step rewards, masks, normalisation, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from manager.data import SequenceSampler, episode_last_state, observation_stats
from tasks.datasets import DatasetError


def toy_dataset() -> dict[str, np.ndarray]:
    """12 rows, obs = row index: episode A rows 0-4 (timeout at 4), B rows 5-8 (terminal at 8,
    its successor row 9 is B's last state), C rows 9-11 (no flag: ends with the file)."""
    n = 12
    terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
    timeouts[4], terminals[8] = True, True
    return {"observations": np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32),
            "actions": np.arange(n, dtype=np.float32)[:, None] / 100,
            "rewards": np.arange(n, dtype=np.float32), "terminals": terminals, "timeouts": timeouts}


def raw(sampler: SequenceSampler, obs: torch.Tensor) -> np.ndarray:
    """Un-normalise the first obs dimension back to row indices."""
    return np.rint(obs[..., 0].numpy() * sampler.obs_std[0] + sampler.obs_mean[0]).astype(int)


def test_episode_last_state():
    d = toy_dataset()
    last = episode_last_state(d["terminals"], d["timeouts"])
    assert last.tolist() == [4] * 5 + [9] * 4 + [11] * 3


def test_start_rows_exclude_last_states():
    sampler = SequenceSampler(toy_dataset(), horizon=2, k=1)
    assert sampler.starts.tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]


def test_k_step_sequence_cut_by_terminal():
    sampler = SequenceSampler(toy_dataset(), horizon=2, k=2, reward_scale=0.1)
    b = sampler.sequences_from(torch.tensor([7]))
    assert raw(sampler, b.obs)[:, 0].tolist() == [7, 9, 9]  # 11 would cross into episode C
    np.testing.assert_allclose(b.rewards[:, 0].numpy(), [0.1 * (7 + 8), 0.0], rtol=1e-6)
    assert b.mask[:, 0].tolist() == [1.0, 0.0]
    assert b.not_done[:, 0].tolist() == [0.0, 1.0]  # the first step holds the terminal row 8


def test_k_step_sequence_cut_by_timeout():
    sampler = SequenceSampler(toy_dataset(), horizon=3, k=3)
    b = sampler.sequences_from(torch.tensor([0, 5]))
    assert raw(sampler, b.obs).T.tolist() == [[0, 3, 4, 4], [5, 8, 9, 9]]
    np.testing.assert_allclose(b.rewards.T.numpy(), [[0 + 1 + 2, 3, 0], [5 + 6 + 7, 8, 0]])
    assert b.mask.T.tolist() == [[1, 1, 0], [1, 1, 0]]
    assert b.not_done.T.tolist() == [[1, 1, 1], [1, 0, 1]]  # timeouts are not terminals
    assert np.allclose(b.actions[:, 0, 0].numpy(), [0.0, 0.03, 0.03])  # past the end: clamped, masked


def test_flat_sequence_inside_an_episode():
    sampler = SequenceSampler(toy_dataset(), horizon=2, k=1)
    b = sampler.sequences_from(torch.tensor([1]))
    assert raw(sampler, b.obs)[:, 0].tolist() == [1, 2, 3]
    np.testing.assert_allclose(b.rewards[:, 0].numpy(), [1, 2])
    np.testing.assert_allclose(b.actions[:, 0, 0].numpy(), [0.01, 0.02])
    assert b.mask.sum() == 2 and b.not_done.sum() == 2


def test_random_batches_never_cross_episodes(umaze_small):
    _, data = umaze_small
    sampler = SequenceSampler(data, horizon=4, k=8, seed=1)
    b = sampler.sample(2048)
    assert b.obs.shape == (5, 2048, 4) and b.actions.shape == (4, 2048, 2)
    assert b.rewards.shape == b.mask.shape == b.not_done.shape == (4, 2048)
    obs = b.obs * torch.as_tensor(sampler.obs_std) + torch.as_tensor(sampler.obs_mean)
    # consecutive states of one sequence are at most k steps of point-mass motion apart
    jumps = (obs[1:, :, :2] - obs[:-1, :, :2]).norm(dim=-1)
    assert jumps.max() < 8 * 0.01 * 10  # |v| <= ~10 cells/s, dt 0.01: never a teleport to a new start
    assert b.mask[0].all()  # the first step of every sample is a real transition
    assert ((b.rewards >= 0) & (b.rewards <= 8)).all()


def test_normalisation_uses_dataset_statistics(umaze_small):
    _, data = umaze_small
    mean, std = observation_stats(data["observations"])
    np.testing.assert_allclose(mean, data["observations"].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, data["observations"].std(0) + 1e-3, rtol=1e-5)
    sampler = SequenceSampler(data, horizon=1)
    assert sampler.observations.mean(0).abs().max() < 1e-4
    given = SequenceSampler(data, horizon=1, obs_mean=np.zeros(4), obs_std=np.ones(4))
    np.testing.assert_allclose(given.observations.numpy(), data["observations"], atol=1e-6)


def test_same_seed_same_batches_and_resume(umaze_small):
    _, data = umaze_small
    a, b = SequenceSampler(data, 3, 2, seed=5), SequenceSampler(data, 3, 2, seed=5)
    assert torch.equal(a.sample(64).obs, b.sample(64).obs)
    state = a.state_dict()
    expected = a.sample(64).obs
    c = SequenceSampler(data, 3, 2, seed=99)
    c.load_state_dict(state)
    assert torch.equal(c.sample(64).obs, expected)
    assert not torch.equal(SequenceSampler(data, 3, 2, seed=6).sample(64).obs, b.sample(64).obs)


def test_dataset_without_transitions_is_refused():
    d = toy_dataset()
    d["timeouts"][:] = True
    with pytest.raises(DatasetError, match="no transition"):
        SequenceSampler(d, horizon=1)


def test_prioritized_sampling_follows_priorities_and_resumes(umaze_small):
    _, data = umaze_small
    sampler = SequenceSampler(data, 2, 1, seed=0, prioritized=True, alpha=1.0, beta=0.5)
    uniform = sampler.sample(256)
    assert torch.allclose(uniform.weight, torch.ones(256))  # all priorities start at 1
    hot = torch.arange(10)
    sampler.update_priorities(hot, torch.full((10,), 1e4))
    batch = sampler.sample(4096)
    share = torch.isin(batch.index, hot).float().mean()
    expected = 10 * 1e4 / (10 * 1e4 + len(sampler) - 10)
    assert abs(share - expected) < 0.03
    assert torch.equal(batch.obs[0], sampler.observations[sampler.starts[batch.index]])  # index names the rows
    # importance weights: rare rows weigh 1, frequent ones (N P)^-beta / max less
    assert batch.weight.max() == 1.0 and batch.weight[torch.isin(batch.index, hot)].max() < 0.1
    restored = SequenceSampler(data, 2, 1, seed=7, prioritized=True, alpha=1.0, beta=0.5)
    restored.load_state_dict(sampler.state_dict())
    assert torch.equal(restored.priorities, sampler.priorities)
    assert torch.equal(restored.sample(64).index, sampler.sample(64).index)
