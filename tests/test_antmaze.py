"""antmaze: ant physics, maze geometry, the safe policy reader, the expert and the generator."""
from __future__ import annotations

import io
import os
import pickle
import shutil

import mujoco
import numpy as np
import pytest

from tasks import TASKS, generate_dataset, get_task, make_env, read_dataset
from tasks.antmaze import ANTMAZE_TASKS
from tasks.antmaze.checkpoint import (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, POLICY_ENV_VAR,
                                      PolicyFileNotFoundError, RestrictedUnpickler,
                                      load_legacy_torch_snapshot, resolve_policy_file)
from tasks.antmaze.env import AntMazeEnv
from tasks.antmaze.generate import EPISODE_ROWS, generate_antmaze, relabel_target
from tasks.antmaze.layouts import maze_maps

try:
    POLICY_FILE = resolve_policy_file()
except PolicyFileNotFoundError:
    POLICY_FILE = None
needs_policy = pytest.mark.skipif(POLICY_FILE is None, reason="D4RL's ant_hierarch_pol.pkl is not available")


# --- registry ------------------------------------------------------------------------------
def test_the_eight_tasks_with_d4rl_names_files_and_limits():
    names = sorted(n for n in TASKS if n.startswith("antmaze"))
    assert names == sorted(["antmaze-umaze-v2", "antmaze-umaze-diverse-v2", "antmaze-medium-play-v2",
                            "antmaze-medium-diverse-v2", "antmaze-large-play-v2", "antmaze-large-diverse-v2",
                            "antmaze-ultra-play-v0", "antmaze-ultra-diverse-v0"])
    limits = {"umaze": 700, "medium": 1000, "large": 1000, "ultra": 2000}
    for name in names:
        spec = get_task(name)
        assert spec.max_episode_steps == limits[ANTMAZE_TASKS[name][0].maze]
        assert (spec.ref_min_score, spec.ref_max_score, spec.obs_dim, spec.act_dim) == (0.0, 1.0, 29, 8)
    assert get_task("antmaze-umaze-v2").dataset_file == \
        "Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5"
    assert get_task("antmaze-large-play-v2").dataset_url.endswith(
        "ant_maze_v2/Ant_maze_hardest-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5")
    assert get_task("antmaze-ultra-diverse-v0").dataset_file == \
        "Ant_maze_ultra_noisy_multistart_True_multigoal_True_sparse.hdf5"


# --- ant physics ---------------------------------------------------------------------------
def test_ant_model_facts():
    env = make_env("antmaze-umaze-v2").unwrapped
    m = env.model
    assert (m.nq, m.nv, m.nu) == (15, 14, 8)
    assert m.opt.timestep == pytest.approx(0.02) and m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    assert m.actuator_gear[:, 0].tolist() == [1.0] * 8
    assert m.actuator_ctrlrange.tolist() == [[-30.0, 30.0]] * 8
    assert env.observation_space.shape == (29,) and env.action_space.shape == (8,)
    assert env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    assert env.init_qpos.tolist() == [0, 0, 0.75, 1, 0, 0, 0] + [0] * 8  # torso at 0.75, upright
    hinge = m.jnt_type == mujoco.mjtJoint.mjJNT_HINGE
    assert np.allclose(m.dof_armature[6:], 1.0) and np.allclose(m.dof_damping[6:], 1.0)
    assert hinge.sum() == 8 and m.jnt_limited[hinge].all()
    torso_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "torso_geom")
    assert m.geom_solref[torso_geom].tolist() == pytest.approx([0.02, 1.0])
    assert m.geom_solimp[torso_geom, :3].tolist() == pytest.approx([0.8, 0.8, 0.01])
    assert m.geom_margin[torso_geom] == pytest.approx(0.01)
    assert m.geom_friction[torso_geom].tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert m.body_mass[1] == pytest.approx(4 / 3 * np.pi * 0.25**3 * 5.0)  # torso sphere, density 5


def test_reset_obs_and_frame_skip():
    env = make_env("antmaze-umaze-v2").unwrapped
    obs, info = env.reset(seed=3)
    assert obs.shape == (29,)
    assert np.array_equal(obs, np.r_[env.data.qpos[:15], env.data.qvel[:14]])
    assert np.all(np.abs(obs[:2]) <= 0.1) and 0.65 <= obs[2] <= 0.85  # start cell, torso near 0.75
    t0 = env.data.time
    action = np.linspace(-1.5, 1.5, 8)
    env.step(action)
    assert env.data.time - t0 == pytest.approx(0.1)  # frame_skip 5 x 0.02 s
    assert env.data.ctrl.tolist() == pytest.approx((30 * np.clip(action, -1, 1)).tolist())


def test_ant_settles_on_its_legs():
    env = AntMazeEnv(maze_maps("umaze")[1])
    env.reset(seed=0)
    for _ in range(30):
        obs = env.physics_step(np.zeros(8))
    assert 0.45 < obs[2] < 0.7 and np.abs(obs[15:18]).max() < 0.05  # standing, at rest


# --- maze geometry -------------------------------------------------------------------------
def _ray(env, start, direction) -> float:
    geom = np.zeros(1, np.int32)
    return mujoco.mj_ray(env.model, env.data, np.asarray(start, float), np.asarray(direction, float),
                         None, 1, -1, geom)


@pytest.mark.parametrize("maze, direction, distance", [
    ("umaze", (0, 1, 0), 2.0), ("umaze", (0, -1, 0), 2.0), ("umaze", (-1, 0, 0), 2.0), ("umaze", (1, 0, 0), 10.0),
    ("medium", (1, 0, 0), 6.0), ("medium", (0, 1, 0), 6.0), ("large", (1, 0, 0), 14.0), ("large", (0, 1, 0), 18.0),
])
def test_walls_where_d4rl_puts_them(maze, direction, distance):
    env = AntMazeEnv(maze_maps(maze)[1])
    env.reset(seed=0)
    assert _ray(env, (0, 0, 1.5), direction) == pytest.approx(distance)  # above the ant, below wall tops


def test_wall_blocks_of_umaze_and_medium():
    for maze, n_walls in (("umaze", 18), ("medium", 38)):
        test_map = maze_maps(maze)[1]
        m = AntMazeEnv(test_map).model
        blocks = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in range(m.ngeom)]
        blocks = [b for b in blocks if b and b.startswith("block_")]
        assert len(blocks) == n_walls == int(test_map.walls.sum())
        for name in blocks:
            i, j = map(int, name.split("_")[1:])
            g = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name)
            assert m.geom_pos[g].tolist() == pytest.approx([4 * j - 4, 4 * i - 4, 1.0])
            assert m.geom_size[g].tolist() == pytest.approx([2.0, 2.0, 1.0])
            assert m.geom_contype[g] == 1 and m.geom_conaffinity[g] == 1
    umaze = maze_maps("umaze")[1]
    assert umaze.wall_cells()[:5] == [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]
    assert (2, 1) in umaze.wall_cells() and (2, 2) in umaze.wall_cells() and (2, 3) not in umaze.wall_cells()


def test_d4rl_cell_rules_and_tap_geometry():
    umaze = maze_maps("umaze")[1]
    assert umaze.xy_to_rowcol((0.0, 0.0)) == (1, 1) and umaze.xy_to_rowcol((-1.5, -1.5)) == (1, 1)
    assert umaze.xy_to_rowcol((3.9, 0.0)) == (1, 1) and umaze.xy_to_rowcol((4.1, 8.0)) == (3, 2)
    assert umaze.rowcol_to_xy((3, 1)).tolist() == [0.0, 8.0]
    ultra = maze_maps("ultra")[1]
    assert ultra.rowcol_to_xy((10, 14)).tolist() == [51.5, 35.5]
    assert ultra.xy_to_rowcol((51.5, 35.5)) == (10, 14) and ultra.xy_to_rowcol((50.9, 34.9)) == (9, 13)


@pytest.mark.parametrize("maze", ["umaze", "medium", "large", "ultra"])
def test_bfs_waypoints_follow_shortest_paths(maze):
    grid = maze_maps(maze)[0]
    target = grid.goal_cells[-1]
    dist = grid.shortest_path_lengths(target)
    for cell in grid.free_cells:
        nxt = grid.next_cell(cell, target)
        if cell == target:
            assert nxt == target
        else:
            assert abs(nxt[0] - cell[0]) + abs(nxt[1] - cell[1]) == 1 and dist[nxt] == dist[cell] - 1


@pytest.mark.parametrize("name, low, high", [
    ("antmaze-umaze-v2", (0.0, 8.0), (1.5, 9.5)), ("antmaze-medium-play-v2", (20.0, 20.0), (21.5, 21.5)),
    ("antmaze-large-diverse-v2", (32.0, 24.0), (33.5, 25.5)), ("antmaze-ultra-play-v0", (51.0, 35.0), (52.5, 36.5)),
])
def test_eval_goal_is_the_g_cell_plus_one_sided_noise_resampled_each_reset(name, low, high):
    env = make_env(name)
    goals = np.array([env.reset(seed=s)[1]["goal"] for s in range(40)])
    assert np.all(goals >= low) and np.all(goals <= high)
    assert len(np.unique(goals[:, 0])) == 40  # a new goal at every reset (v2)
    env.reset(seed=7)
    assert env.reset()[1]["goal"].tolist() != env.reset()[1]["goal"].tolist()


def test_success_within_half_a_unit_ends_the_episode():
    env = make_env("antmaze-umaze-v2").unwrapped
    env.reset(seed=0)
    qpos, qvel = env.data.qpos.copy(), np.zeros(14)
    qpos[:2] = env.goal + [0.3, 0.0]
    env.set_state(qpos, qvel)
    _, reward, terminated, truncated, info = env.step(np.zeros(8))
    assert (reward, terminated, truncated, info["success"]) == (1.0, True, False, True)
    qpos[:2] = env.goal + [1.0, 0.0]
    env.set_state(qpos, qvel)
    _, reward, terminated, _, _ = env.step(np.zeros(8))
    assert (reward, terminated) == (0.0, False)


def test_multi_start_resets_use_d4rl_cells():
    grid = maze_maps("medium")[0]
    assert (1, 1) in grid.reset_cells and not set(grid.goal_cells) & set(grid.reset_cells)
    env = AntMazeEnv(grid, multi_start=True)
    rng = np.random.default_rng(0)
    for _ in range(30):
        xy = env.reset_ant(rng)[:2]
        cells = [c for c in grid.reset_cells
                 if np.all(xy >= grid.cell_center(c)) and np.all(xy <= grid.cell_center(c) + 1)]
        assert cells, xy


# --- the restricted unpickler --------------------------------------------------------------
class Payload:
    """Unpickling this would call os.system (were it ever built)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


class CustomThing:
    pass


def _legacy_file(path, main_pickle: bytes) -> None:
    with open(path, "wb") as f:
        for obj in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION,
                    {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}):
            pickle.dump(obj, f, protocol=2)
        f.write(main_pickle)
        pickle.dump([], f, protocol=2)


@pytest.mark.parametrize("evil", ["system", "custom", "eval"])
def test_unpickler_refuses_to_build_anything_else(tmp_path, evil):
    marker = tmp_path / "pwned"
    obj = {"system": lambda: Payload(marker), "custom": CustomThing,
           "eval": lambda: type("E", (), {"__reduce__": lambda self: (eval, ("1+1",))})()}[evil]()
    blob = pickle.dumps({"exploration/policy": obj}, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        RestrictedUnpickler(io.BytesIO(blob)).load()
    _legacy_file(tmp_path / "evil.pkl", blob)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_legacy_torch_snapshot(tmp_path / "evil.pkl")
    assert not marker.exists()


def test_unpickler_rebuilds_tensors_from_a_legacy_file(tmp_path):
    import collections

    import torch

    path = tmp_path / "legacy.pkl"
    view = torch.arange(6.0).reshape(2, 3)[:, 1]  # a strided view into a 6-element storage
    torch.save({"w": torch.tensor([1.5, -2.0, 3.25]), "d": collections.OrderedDict(v=view)}, path,
               _use_new_zipfile_serialization=False)
    snap = load_legacy_torch_snapshot(path)
    assert snap["w"].tolist() == [1.5, -2.0, 3.25] and snap["d"]["v"].tolist() == [1.0, 4.0]
    assert isinstance(snap["d"], collections.OrderedDict)


def test_missing_policy_file_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv(POLICY_ENV_VAR, str(tmp_path / "nope.pkl"))
    with pytest.raises(PolicyFileNotFoundError, match="D4RL.*ant_hierarch_pol.pkl.*ANTMAZE_POLICY_FILE"):
        resolve_policy_file()
    with pytest.raises(PolicyFileNotFoundError, match="nope2.pkl"):
        resolve_policy_file(tmp_path / "nope2.pkl")  # an explicit path wins over the variable


# --- D4RL's policy and the expert ----------------------------------------------------------
@needs_policy
def test_policy_loads_and_walks_to_a_goal_in_open_space():
    from tasks.antmaze.policy import GoalReachingPolicy, policy_inputs

    policy = GoalReachingPolicy.load()
    assert (policy.obs_dim, policy.act_dim) == (29, 8)
    assert [layer.weight.shape[0] for layer in policy.hidden] == [256, 256]
    rng = np.random.default_rng(0)
    actions = policy.act(rng.standard_normal((5, 29)), rng.standard_normal((5, 8)))
    assert actions.shape == (5, 8) and np.all(np.abs(actions) <= 1)
    env = AntMazeEnv(None)  # the ant alone on the open floor
    obs = env.reset_ant(np.random.default_rng(0))
    goal = np.array([[6.0, 3.0]])
    closest = np.inf
    for _ in range(120):  # tanh(mean) actions towards a goal 6.7 away
        obs = env.physics_step(policy.act(policy_inputs(obs[None], goal))[0])
        closest = min(closest, np.linalg.norm(obs[:2] - goal[0]))
    assert closest < 1.0


@needs_policy
def test_expert_reaches_the_umaze_goal():
    from tasks.evaluation import evaluate_policy, make_policy

    returns = evaluate_policy("antmaze-umaze-v2", make_policy("antmaze-umaze-v2", "expert", seed=0),
                              episodes=4, seed=0, num_envs=4)
    assert returns.sum() >= 2, returns


@needs_policy
@pytest.mark.slow
def test_expert_reaches_the_umaze_goal_in_most_episodes():
    from tasks.evaluation import evaluate_policy, make_policy

    returns = evaluate_policy("antmaze-umaze-v2", make_policy("antmaze-umaze-v2", "expert", seed=1),
                              episodes=20, seed=1, num_envs=20)
    assert returns.mean() >= 0.6, returns


# --- the generator -------------------------------------------------------------------------
@needs_policy
def test_generator_layout_labels_and_determinism(tmp_path):
    name = "antmaze-umaze-diverse-v2"
    steps = EPISODE_ROWS + 60
    path = generate_dataset(name, out=tmp_path / "a.hdf5", steps=steps, seed=4, show_progress=False)
    data = read_dataset(path, get_task(name))
    layout = {"observations": (29,), "actions": (8,), "rewards": (), "terminals": (), "timeouts": (),
              "infos/goal": (2,), "infos/qpos": (15,), "infos/qvel": (14,)}
    assert set(data) == set(layout)
    for key, shape in layout.items():
        assert data[key].shape == (steps, *shape), key
        assert data[key].dtype == (bool if key in ("terminals", "timeouts") else np.float32), key
    assert np.flatnonzero(data["timeouts"]).tolist() == [EPISODE_ROWS - 1]  # 1001-step episodes
    assert np.all(np.abs(data["actions"]) <= 1)
    # rows: obs before the step, qpos/qvel after it (D4RL appends after env.step)
    within = np.arange(steps - 1) != EPISODE_ROWS - 1
    assert np.allclose(data["infos/qpos"][:-1][within], data["observations"][1:, :15][within])
    assert np.allclose(data["infos/qvel"][:-1][within], data["observations"][1:, 15:][within])
    # one commanded goal per episode, diverse: in the maze's free cells
    assert len(np.unique(data["infos/goal"][:EPISODE_ROWS], axis=0)) == 1
    assert not np.array_equal(data["infos/goal"][0], data["infos/goal"][-1])
    # v2 labels: the next row within 0.5 of one fixed target
    target = relabel_target(maze_maps("umaze")[1], 4).astype(np.float32)
    near = np.linalg.norm(data["observations"][1:, :2] - target, axis=1) <= 0.5
    assert np.array_equal(data["rewards"], np.r_[near, False].astype(np.float32))
    assert np.array_equal(data["terminals"], data["rewards"] > 0)
    # the same seed gives the same arrays, whatever the number of ants at once
    again = generate_antmaze(ANTMAZE_TASKS[name][0], steps, 4, show_progress=False, num_envs=1)
    for key in layout:
        assert np.array_equal(again[key], data[key]), key


@needs_policy
def test_play_goals_are_the_hand_picked_cells():
    data = generate_antmaze(ANTMAZE_TASKS["antmaze-large-play-v2"][0], 3, seed=0, show_progress=False)
    grid = maze_maps("large")[0]
    goal = data["infos/goal"][0]
    assert any(np.all(goal >= grid.cell_center(c)) and np.all(goal <= grid.cell_center(c) + 1.5)
               for c in grid.goal_cells)


# --- the CLI -------------------------------------------------------------------------------
def test_cli_evaluate_reports_a_success_rate(tmp_path, capsys):
    from tasks.__main__ import main

    assert main(["evaluate", "antmaze-umaze-v2", "--policy", "random", "--episodes", "2",
                 "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == "success_rate=0.0000" and lines[-1] == "normalized_score=0.0000"


def test_cli_policy_file_flag(tmp_path, monkeypatch, capsys):
    from tasks.__main__ import main

    monkeypatch.setenv(POLICY_ENV_VAR, str(tmp_path / "not-here.pkl"))  # only the flag can find the file
    args = ["evaluate", "antmaze-umaze-v2", "--policy", "expert", "--episodes", "1", "--num-envs", "1",
            "--runs-dir", str(tmp_path / "runs"), "--no-progress"]
    assert main([*args, "--policy-file", str(tmp_path / "missing.pkl")]) == 2
    err = capsys.readouterr().err
    assert "--policy-file" in err and "missing.pkl" in err and "ant_hierarch_pol.pkl" in err
    if POLICY_FILE is None:
        pytest.skip("D4RL's ant policy is not available here")
    mine = tmp_path / "my_copy.pkl"
    shutil.copyfile(POLICY_FILE, mine)
    assert main([*args, "--policy-file", str(mine)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-2].startswith("success_rate=")
